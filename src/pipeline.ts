// One client query's way through raced, top to bottom:
//   checks → access → localhost (RFC 6761) → search → hosts files → cache → in-flight cap → route → coalescing → race → shape → reply.
import { performance } from 'node:perf_hooks';
import type { Client, ClientTransport } from './client.js';
import { Rcode, rcodeName } from './wire/constants.js';
import { checkQuery, nameToText, readQuestion, typeName, type ParsedQuery, type Scan } from './wire/message.js';
import { errorReply, ownOptSize, replyLimit, shapeReply, upstreamQuery } from './wire/build.js';
import { questionKey } from './wire/key.js';
import { rotateAnswers } from './wire/rotate.js';
import { cidrContains, isLoopback, type Cidr } from './net/address.js';
import { Race, RaceStats, type RaceOwner, type RaceRules } from './race.js';
import type { RaceWindow } from './tradeoff/window.js';
import { EDE, addEde } from './wire/ede.js';
import type { AddressRules } from './wire/filter.js';
import { Deadlines } from './deadlines.js';
import { LOCAL, type Router } from './router.js';
import type { Upstream } from './upstream/upstream.js';
import type { Strategy } from './strategy/strategy.js';
import type { AnswerCache, CacheEntry } from './cache/cache.js';
import { LatencyTracker } from './upstream/stats.js';
import type { Logger } from './log.js';
import type { LocalHosts } from './hosts/local.js';
import { localhostAnswer } from './hosts/localhost.js';
import { searchAndAnswer, type SearchOptions } from './search.js';
import { RateLimiter, type RateLimitOptions } from './ratelimit.js';
import { QueryGuard, RateLimitedLog } from './guard.js';

export interface PipelineOptions {
  /** Deadline for one client query. */
  timeoutMs: number;
  /** Cap on client queries waiting on upstreams; beyond it: REFUSED (or a stale answer). */
  forwardMax: number;
  /** Clients allowed besides loopback. */
  allow: readonly Cidr[];
  /** Largest UDP reply to a client, and the EDNS size raced advertises upstream. */
  ednsPacketMax: number;
  logQueries: boolean;
  /** Where query and reply lines go when the main log's level would hide them (--log-level warn/error). */
  queryLog?: Logger;
  /** Rotate A/AAAA records per reply (--round-robin). */
  roundRobin?: boolean;
  /** Search domains for clients that do not search (--enable-search). */
  search?: SearchOptions | null;
  /** Names with fewer dots are not forwarded (--fwd-ndots); 0: all are. */
  fwdNdots?: number;
  /** Never forward (--no-rec): only local answers and the cache. */
  noRec?: boolean;
  /** With serve-stale: answer from a stale entry if no answer came in this time (RFC 8767 §5: 1.8 s). */
  staleAfterMs: number;
  /** Per-client-prefix query rate limit (--rate-limit); null: off. */
  rateLimit?: RateLimitOptions | null;
  /** --negative-grace: ms a negative answer waits for agreement; -1 derived from latency; 0 off. */
  negativeGraceMs?: number;
  /** --ignore-address, --bogus-nxdomain, --stop-dns-rebind. */
  addresses?: AddressRules | null;
}

export class PipelineStats {
  /** Replies by client transport and RCODE. */
  readonly replies: Record<ClientTransport, Float64Array> = { udp: new Float64Array(24), tcp: new Float64Array(24) };
  /** Queries dropped without a reply (too short, QR=1). */
  dropped = 0;
  coalesced = 0;
  /** Client-facing latency, seconds. */
  readonly duration = new LatencyTracker();
}

interface Waiter {
  query: Buffer;
  pq: ParsedQuery;
  client: Client;
  maxSize: number;
  started: number;
  done: boolean;
  stale: CacheEntry | null;
  staleTimer: NodeJS.Timeout | null;
}

/** A flight's waiters once answered (shared, never written: no query joins a flight that has ended). */
const NO_WAITERS: Waiter[] = [];

/** How a race ended, as the pipeline answers it: a winner's reply, or an RCODE. */
type Settle = (f: Flight, reply: Buffer | null, scan: Scan | null, winner: Upstream | null, rcode: number, reason: 'lost' | 'timeout', ede: number) => void;

/** One race and the client queries waiting for it (identical queries share it). */
class Flight implements RaceOwner {
  /** The cache entry this race refreshes ahead of expiry, if it is a prefetch. */
  refreshing: CacheEntry | null = null;

  constructor(
    readonly key: string,
    /** The client queries to answer; emptied once they are (see answerFlight). */
    public waiters: Waiter[],
    private readonly settle: Settle,
  ) {}

  raceWon(reply: Buffer, scan: Scan, winner: Upstream): void {
    this.settle(this, reply, scan, winner, scan.rcode, 'lost', -1);
  }

  raceLost(rcode: number, reason: 'lost' | 'timeout', ede: number): void {
    this.settle(this, null, null, null, rcode, reason, ede);
  }
}

export class Pipeline {
  readonly stats = new PipelineStats();
  readonly raceStats = new RaceStats();
  /** Client queries waiting for an answer. */
  inflight = 0;
  private turn = 0;
  private readonly flights = new Map<string, Flight>();
  /** Every race's deadline, on one timer. */
  private readonly deadlines = new Deadlines();
  /** What every race shares: the negative grace, its deadline list, the address rules. */
  private readonly rules: RaceRules;
  private readonly settle: Settle = (f, reply, scan, winner, rcode, reason, ede) => this.finish(f, reply, scan, winner, rcode, reason, ede);
  private drainWaiters: (() => void)[] = [];
  /** raced is stopping: queries in flight are answered, new ones REFUSED. */
  draining = false;
  /** Replies sent so far: tells handle() whether a query that faulted got one. */
  private sent = 0;
  readonly rateLimiter: RateLimiter | null;
  /** Counts and logs the exceptions that get past everything else (raced_query_errors_total). */
  readonly guard: QueryGuard;
  /** Lines about clients outside loopback and --allow. */
  private readonly refusedLog: RateLimitedLog;
  /** The client query being handled, and the race started for it, if any: what a fault must undo. */
  private current: Waiter | null = null;
  private currentFlight: Flight | null = null;
  /** Query and reply lines: with --log-queries (whatever the level) or at --log-level debug. */
  private readonly logging: boolean;
  private readonly qlog: Logger;
  private readonly resolveInternal = (q: Buffer, c: Client): void => this.handle(q, c);

  constructor(
    private readonly opts: PipelineOptions,
    private readonly router: Router,
    private readonly strategy: Strategy,
    readonly cache: AnswerCache | null,
    private readonly log: Logger,
    readonly hosts: LocalHosts | null = null,
  ) {
    this.rateLimiter = opts.rateLimit ? new RateLimiter(opts.rateLimit) : null;
    this.rules = { negativeGraceMs: opts.negativeGraceMs ?? -1, graces: new Deadlines(), addresses: opts.addresses ?? null, log };
    this.guard = new QueryGuard(log);
    this.refusedLog = new RateLimitedLog((line) => log.info(line));
    this.logging = opts.logQueries || log.enabled('debug');
    this.qlog = opts.queryLog ?? log;
  }

  /** The trade-off window that races on its upstream set record into (tradeoff/engine.ts); null: none. */
  setTradeoffWindow(w: RaceWindow | null): void {
    this.rules.window = w;
  }

  /**
   * One client query in. Never throws: an unexpected exception drops this
   * query (counted, logged at a bounded rate) and leaves the counters and the
   * flight table as if it had never come, so no later query waits on it.
   */
  handle(msg: Buffer, client: Client): void {
    // Search asks its tries through here from inside an outer handle(): keep the outer's state.
    const outer = this.current;
    const outerFlight = this.currentFlight;
    this.current = null;
    this.currentFlight = null;
    const sent = this.sent;
    try {
      this.handleQuery(msg, client);
    } catch (err) {
      this.undo();
      this.guard.fault('pipeline', err, client.address);
      // Nothing went to the client for this query, and nothing will: a TCP connection stops owing it.
      if (this.sent === sent) client.dropped?.();
    } finally {
      this.current = outer;
      this.currentFlight = outerFlight;
    }
  }

  /** After a fault: the query's waiter no longer counts in flight; a race started for it takes no one else. */
  private undo(): void {
    const w = this.current;
    if (w !== null && !w.done) {
      w.done = true;
      if (w.staleTimer) clearTimeout(w.staleTimer);
      this.inflight--;
      if (this.inflight === 0 && this.drainWaiters.length > 0) for (const f of this.drainWaiters.splice(0)) f();
    }
    const f = this.currentFlight;
    if (f !== null && this.flights.get(f.key) === f) this.flights.delete(f.key);
  }

  private handleQuery(msg: Buffer, client: Client): void {
    const started = performance.now();
    const v = checkQuery(msg);
    if (!v.ok) {
      if (v.rcode === null) {
        this.stats.dropped++;
        return client.dropped?.();
      }
      if (this.log.enabled('debug')) {
        const line = (): string => `bad query from ${client.address} (${v.reason}): ${rcodeName(v.rcode!)}`;
        if (this.allowed(client.address)) this.log.debug(line());
        else this.refusedLog.log(line);
      }
      return this.send(client, errorReply(msg, v.question, v.rcode, v.edns, this.opts.ednsPacketMax), v.rcode);
    }
    const pq = v.query;
    const logging = this.logging && !client.internal;
    if (this.rateLimiter !== null && !client.internal && !this.overLimitAnswered(msg, pq, client)) return;
    // Stopping: REFUSED at once, so the client asks its next server now rather than after a timeout.
    if (this.draining) return this.reply(client, errorReply(msg, pq.question, Rcode.REFUSED, pq.edns, this.opts.ednsPacketMax), started, logging, 'stopping');
    if (!this.allowed(client.address)) {
      // Anyone who reaches the port can send these: a bounded number of lines, not one per query.
      if (logging) this.refusedLog.log(() => `refused query[${typeName(pq.question.qtype)}] ${nameToText(msg)} from ${client.address}: not allowed`);
      return this.send(client, errorReply(msg, pq.question, Rcode.REFUSED, pq.edns, this.opts.ednsPacketMax, EDE.PROHIBITED));
    }
    if (logging) this.logQuery(msg, pq, client);
    const loopback = localhostAnswer(msg, pq, this.opts.ednsPacketMax);
    if (loopback !== null) return this.reply(client, loopback, started, logging, 'localhost');
    const search = this.opts.search;
    if (search && !client.internal) {
      const ctx = { resolve: this.resolveInternal, reply: (r: Buffer) => this.reply(client, r, started, logging, 'search'), transport: client.transport, ednsPacketMax: this.opts.ednsPacketMax };
      if (searchAndAnswer(msg, pq, search, ctx)) return;
    }
    if (this.hosts !== null) {
      const local = this.hosts.answer(msg, pq, client.transport === 'udp', this.opts.ednsPacketMax);
      if (local !== null) return this.reply(client, local, started, logging, 'hosts');
    }
    const maxSize = replyLimit(pq, client.transport === 'udp', this.opts.ednsPacketMax);
    const key = questionKey(msg, pq);
    let stale: CacheEntry | null = null;
    const cache = this.cache;
    if (cache !== null) {
      // The monotonic clock: a wall-clock step must not stretch or cut a TTL.
      const now = performance.now();
      const hit = cache.lookup(key, now);
      if (hit !== null && hit.state === 'fresh') {
        this.reply(client, shapeReply(hit.entry.reply, hit.entry, msg, pq, maxSize, hit.age), started, logging, 'cache');
        if (cache.wantsPrefetch(hit.entry, now)) this.prefetch(key, msg, pq, hit.entry);
        return;
      }
      if (hit !== null) stale = hit.entry;
    }
    const route = this.router.select(msg);
    const tooShort = (this.opts.fwdNdots ?? 0) > 0 && labelCount(msg) - 1 < this.opts.fwdNdots!;
    if (route === LOCAL || route.length === 0 || this.opts.noRec || tooShort) {
      // A local domain (dnsmasq --server=/domain/) or a name with too few dots (--fwd-ndots) is
      // never forwarded: NXDOMAIN. No upstream at all, or --no-rec: REFUSED. None of these waits.
      const rcode = route === LOCAL || (tooShort && !this.opts.noRec) ? Rcode.NXDOMAIN : Rcode.REFUSED;
      return this.reply(client, errorReply(msg, pq.question, rcode, pq.edns, this.opts.ednsPacketMax), started, logging, 'not forwarded');
    }
    // The cap counts only queries that would wait on upstreams: local and
    // cached answers go on, and a stale entry is the answer when it is full.
    if (this.inflight >= this.opts.forwardMax) {
      if (stale !== null) return this.reply(client, this.staleReply(stale, msg, pq, maxSize), started, logging, 'stale, --dns-forward-max reached');
      return this.reply(client, errorReply(msg, pq.question, Rcode.REFUSED, pq.edns, this.opts.ednsPacketMax), started, logging, '--dns-forward-max reached');
    }
    const w: Waiter = {
      query: msg,
      pq,
      client,
      maxSize,
      started,
      done: false,
      stale,
      staleTimer: null,
    };
    this.inflight++;
    this.current = w;
    if (stale !== null) {
      w.staleTimer = setTimeout(() => this.answerStale(w), Math.min(this.opts.staleAfterMs, this.opts.timeoutMs));
    }
    const flight = this.flights.get(key);
    if (flight !== undefined) {
      this.stats.coalesced++;
      flight.waiters.push(w);
      return;
    }
    this.startRace(key, msg, pq, [w], route, started);
  }

  private startRace(key: string, msg: Buffer, pq: ParsedQuery, waiters: Waiter[], upstreams: readonly Upstream[], now: number): Flight {
    const packet = upstreamQuery(msg, pq, 0, this.opts.ednsPacketMax);
    const flight = new Flight(key, waiters, this.settle);
    this.currentFlight = flight;
    const race = new Race(packet, pq.question.end, upstreams, this.strategy, this.raceStats, this.deadlines, this.cache !== null, flight, this.rules);
    this.flights.set(key, flight);
    race.start(this.opts.timeoutMs, now);
    return flight;
  }

  /** A race ended. An exception in answering its waiters still answers each one left (SERVFAIL), so none stays in flight for ever. */
  private finish(flight: Flight, reply: Buffer | null, scan: Scan | null, winner: Upstream | null, rcode: number, reason: 'lost' | 'timeout', ede: number): void {
    try {
      this.answerFlight(flight, reply, scan, winner, rcode, reason, ede);
    } catch (err) {
      this.guard.fault('pipeline', err);
      if (this.flights.get(flight.key) === flight) this.flights.delete(flight.key);
      if (flight.refreshing) flight.refreshing.refreshing = false;
      for (const w of flight.waiters) {
        if (w.done) continue;
        try {
          this.answer(w, errorReply(w.query, w.pq.question, Rcode.SERVFAIL, w.pq.edns, this.opts.ednsPacketMax));
        } catch {
          // answer() marked it done and out of flight before sending; the fault is counted above
        }
      }
    }
  }

  private answerFlight(flight: Flight, reply: Buffer | null, scan: Scan | null, winner: Upstream | null, rcode: number, reason: 'lost' | 'timeout', ede: number): void {
    const key = flight.key;
    if (this.flights.get(key) === flight) this.flights.delete(key);
    if (flight.refreshing) flight.refreshing.refreshing = false;
    if (reply !== null) ownOptSize(reply, scan!, this.opts.ednsPacketMax);
    const stored = reply !== null && this.cache !== null ? this.cache.store(key, reply, scan!, performance.now()) : null;
    if (this.logging) {
      const what = winner !== null ? `${rcodeName(rcode)} from ${winner.label}` : `${rcodeName(rcode)} (${reason})`;
      this.qlog.info(`reply ${flight.waiters[0] ? nameToText(flight.waiters[0].query) : '(prefetch)'} is ${what}`);
    }
    const waiters = flight.waiters;
    for (let i = 0; i < waiters.length; i++) {
      const w = waiters[i]!;
      if (w.done) continue;
      if (stored !== null) {
        this.answer(w, shapeReply(stored.reply, stored, w.query, w.pq, w.maxSize, 0));
      } else if (reply !== null) {
        // The last waiter may have the upstream's own buffer, patched in place: nothing else reads it.
        this.answer(w, shapeReply(reply, scan!, w.query, w.pq, w.maxSize, 0, -1, i === waiters.length - 1));
      } else if (w.stale !== null) {
        this.answerStale(w);
      } else {
        this.answer(w, errorReply(w.query, w.pq.question, rcode, w.pq.edns, this.opts.ednsPacketMax, ede));
      }
    }
    // Every waiter is answered and the flight is out of the table: let go of
    // them (client query, address, parsed question) now rather than when the
    // race's last leg ends. Measured: the bytes V8 promotes to the old
    // generation per scavenge fell from ~500 KB to ~110 KB under dnsperf.
    flight.waiters = NO_WAITERS;
  }

  /** RFC 8767: the stale entry with TTL 30, while the race goes on to refresh the cache. */
  private answerStale(w: Waiter): void {
    if (w.done || w.stale === null) return;
    this.answer(w, this.staleReply(w.stale, w.query, w.pq, w.maxSize));
  }

  /** A stale answer, counted: RFC 8767 TTL 30 and, to EDNS clients only, RFC 8914's word that it is stale (19 for a stale NXDOMAIN). */
  private staleReply(entry: CacheEntry, query: Buffer, pq: ParsedQuery, maxSize: number): Buffer {
    if (this.cache) this.cache.stats.stale++;
    const reply = shapeReply(entry.reply, entry, query, pq, maxSize, 0, 30);
    const ede = (reply[3]! & 0x0f) === Rcode.NXDOMAIN ? EDE.STALE_NXDOMAIN : EDE.STALE_ANSWER;
    return pq.edns && (reply[2]! & 0x02) === 0 ? addEde(reply, ede, maxSize, this.opts.ednsPacketMax) : reply;
  }

  private prefetch(key: string, msg: Buffer, pq: ParsedQuery, entry: CacheEntry): void {
    if (this.flights.has(key) || this.opts.noRec || this.draining) return;
    const route = this.router.select(msg);
    if (route === LOCAL || route.length === 0) return;
    entry.refreshing = true;
    if (this.cache) this.cache.stats.prefetches++;
    // The race stores its winner under `key`, which replaces `entry`.
    this.startRace(key, msg, pq, [], route, performance.now()).refreshing = entry;
  }

  private answer(w: Waiter, reply: Buffer): void {
    w.done = true;
    if (w.staleTimer) clearTimeout(w.staleTimer);
    this.inflight--;
    if (!w.client.internal) this.stats.duration.observe((performance.now() - w.started) / 1000);
    this.send(w.client, reply);
    if (this.inflight === 0 && this.drainWaiters.length > 0) {
      for (const f of this.drainWaiters.splice(0)) f();
    }
  }

  /** `rcode`: the whole RCODE where it has extended bits (BADVERS), which the header alone does not show. */
  private send(client: Client, reply: Buffer, rcode = reply[3]! & 0x0f): void {
    this.sent++;
    if (client.internal) return client.respond(reply);
    this.stats.replies[client.transport][rcode]!++;
    if (this.opts.roundRobin && reply.readUInt16BE(6) > 1) rotateAnswers(reply, questionEnd(reply), this.turn++);
    client.respond(reply);
  }

  /**
   * False when the client is over --rate-limit (then answered as the action
   * says, or not at all). Truncation sends UDP clients to TCP, where the
   * source address is real: with that action TCP is not limited.
   */
  private overLimitAnswered(msg: Buffer, pq: ParsedQuery, client: Client): boolean {
    const rl = this.rateLimiter!;
    const action = rl.opts.action;
    if (action === 'truncate' && client.transport === 'tcp') return true;
    if (rl.admit(client.address)) return true;
    if (action === 'refuse') {
      this.send(client, errorReply(msg, pq.question, Rcode.REFUSED, pq.edns, this.opts.ednsPacketMax));
    } else if (action === 'truncate') {
      const tc = errorReply(msg, pq.question, Rcode.NOERROR, pq.edns, this.opts.ednsPacketMax);
      tc[2]! |= 0x02;
      this.send(client, tc);
    } else {
      client.dropped?.();
    }
    return false;
  }

  /** A reply that waited on no upstream (local, cache, search): timed, logged and sent. */
  private reply(client: Client, reply: Buffer, started: number, logging: boolean, source: string): void {
    if (!client.internal) this.stats.duration.observe((performance.now() - started) / 1000);
    if (logging) this.qlog.info(`reply ${nameToText(reply)} is ${rcodeName(reply[3]! & 0x0f)} (${source})`);
    this.send(client, reply);
  }

  private allowed(address: string): boolean {
    if (isLoopback(address)) return true;
    for (const c of this.opts.allow) if (cidrContains(c, address)) return true;
    return false;
  }

  private logQuery(msg: Buffer, pq: ParsedQuery, client: Client): void {
    this.qlog.info(`query[${typeName(pq.question.qtype)}] ${nameToText(msg)} from ${client.address}`);
  }

  /** Resolves when no client query is in flight, or after `ms`. */
  drain(ms: number): Promise<void> {
    if (this.inflight === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      this.drainWaiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  /** Ends every race now (their clients get SERVFAIL, their open legs are released). */
  abortAll(): void {
    this.deadlines.expireAll();
    // Every race is settled now (a held negative answer won); stop the grace timer too.
    this.rules.graces.expireAll();
  }
}

function questionEnd(reply: Buffer): number {
  return readQuestion(reply)?.end ?? reply.length;
}

/** Labels in the question name at offset 12. */
function labelCount(msg: Buffer): number {
  let n = 0;
  for (let off = 12; off < msg.length && msg[off]! > 0; off += msg[off]! + 1) n++;
  return n;
}
