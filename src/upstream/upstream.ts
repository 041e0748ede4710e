// One upstream resolver: how to reach it, its counters and its health.
// A leg is one query to one upstream; it knows nothing of races.
import { performance } from 'node:perf_hooks';
import type tls from 'node:tls';
import { FLAG_TC, Rcode, Type, CLASS_IN } from '../wire/constants.js';
import { matchReply } from '../wire/match.js';
import { newScan, type Scan } from '../wire/message.js';
import { takeStreamOptions, withStreamOptions } from '../wire/stream-options.js';
import { hostPart, type Endpoint } from '../net/address.js';
import type { UpstreamSpec } from './address.js';
import { Health } from './health.js';
import { UpstreamStats, type ErrorKind } from './stats.js';
import { random16, type PendingUdp, type UdpPool, type UdpSlot } from './udp-pool.js';
import { tcpExchange, type TcpExchange } from './tcp.js';
import { StreamPool, type ConnErrorKind, type QueryConn, type StreamPoolOptions } from './stream-pool.js';
import { DohPool, type DohWaiter, type HttpErrorKind } from './doh-pool.js';
import type { NameWatch } from './bootstrap.js';
import { u16, put16, copyBytes } from '../wire/bytes.js';

export { parseUpstream, type Transport, type UpstreamSpec } from './address.js';

/** Who hears how a leg ended: one call per leg, none after abandon(). */
export interface LegOwner {
  /** A valid reply; `at` is performance.now() when it came in. */
  legAnswered(leg: Leg, reply: Buffer, scan: Scan, at: number): void;
  legFailed(leg: Leg, error: ErrorKind): void;
  /** The owner needs no more answers: a later reply is still checked and counted, but its scan is not kept. */
  readonly decided: boolean;
}

/** What an upstream tells its owner (for the log). */
export interface UpstreamEvents {
  health(u: Upstream, up: boolean): void;
  /** It answers, but only SERVFAIL/REFUSED for a while (true), or a valid answer again (false). */
  failing?(u: Upstream, failing: boolean): void;
  connError(u: Upstream, kind: ConnErrorKind, message: string): void;
  /** An exception while handling a reply: the leg is lost, raced goes on. */
  fault(u: Upstream, err: unknown): void;
}

const QUIET: UpstreamEvents = { health: () => {}, connError: () => {}, fault: () => {} };

/** Legs whose connection went away are sent again at most this often. */
const MAX_RESENDS = 2;
/** Legs an HTTP/2 server refused (GOAWAY) are sent again at most this often. */
const MAX_REFUSALS = 8;
/** A leg whose reconnect failed right after losing its connection tries once more after this long. */
const RETRY_AFTER_MS = 100;
const RESTART_WINDOW_MS = 1000;

export class Upstream {
  readonly stats = new UpstreamStats();
  readonly health: Health;
  readonly label: string;
  /** Pooled connections for tcp://, tls:// and https:// upstreams; null for UDP. */
  readonly stream: StreamPool | DohPool | null;
  readonly events: UpstreamEvents;

  constructor(
    readonly spec: UpstreamSpec,
    readonly pool: UdpPool,
    events: UpstreamEvents = QUIET,
    streamOpts: StreamSettings | null = null,
  ) {
    this.label = spec.label;
    this.events = events;
    this.health = new Health(
      (done) => this.probe(done),
      (up) => events.health(this, up),
      (failing) => events.failing?.(this, failing),
    );
    if (spec.transport !== 'udp' && streamOpts === null) throw new Error(`${spec.label}: stream settings are required for ${spec.transport} upstreams`);
    const onConnError = (kind: ConnErrorKind, message: string, established: boolean): void => {
      events.connError(this, kind, message);
      // Availability: a server that cannot give a connection is pulled at once and probed back with backoff.
      if (!established) this.health.markDown();
    };
    const onStray = (): void => void this.stats.errors.mismatch++;
    const tlsSettings = streamOpts && { servername: spec.tlsName, context: streamOpts.context };
    if (streamOpts === null || tlsSettings === null || spec.transport === 'udp') this.stream = null;
    else if (spec.transport === 'https') {
      const { host, port } = spec.endpoint;
      const name = spec.tlsName ?? hostPart(host);
      const target = { tls: tlsSettings, authority: port === 443 ? name : `${name}:${port}`, path: spec.path ?? '/dns-query' };
      this.stream = new DohPool(spec.hostName ? null : spec.endpoint, { ...streamOpts, tls: tlsSettings }, target, onConnError, onStray);
    } else {
      this.stream = new StreamPool(spec.endpoint, { ...streamOpts, tls: spec.transport === 'tls' ? tlsSettings : null }, onConnError, onStray);
    }
  }

  /**
   * Sends `query` (an upstream query whose ID is overwritten per leg) and tells
   * `owner` once: a valid reply, or an error. `leg.abandon()` ends a leg that
   * has not finished, counting it as a timeout or not. `now`: performance.now(),
   * which the caller usually has already.
   */
  ask(query: Buffer, qEnd: number, wantTtls: boolean, owner: LegOwner, now: number, probe = false): Leg {
    return new Leg(this, query, qEnd, wantTtls, owner, now, probe);
  }

  /** https://HOST with HOST a name: what keeps it resolved (set by the owner). */
  bootstrap: NameWatch | null = null;

  /** Stops probing and closes pooled connections (the upstream left the configuration, or raced stops). */
  close(): void {
    this.bootstrap?.stop();
    this.health.stop();
    this.stream?.close();
  }

  private probe(done: (alive: boolean) => void): void {
    // `. NS`, RD set, no EDNS: any well-formed reply means the server is alive.
    const q = Buffer.from([0, 0, 0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, Type.NS, 0, CLASS_IN]);
    const end = (alive: boolean): void => {
      clearTimeout(timer);
      done(alive);
    };
    const owner: LegOwner = { legAnswered: () => end(true), legFailed: () => end(false), decided: false };
    const leg = this.ask(q, q.length, false, owner, performance.now(), true);
    const timer = setTimeout(() => {
      leg.abandon(true);
      done(false);
    }, 2000);
    timer.unref();
  }
}

/** How pooled connections are made: the pool options, and the TLS context for tls:// upstreams. */
export type StreamSettings = Omit<StreamPoolOptions, 'tls'> & { context: tls.SecureContext };

/** A scan for replies whose owner has decided: checked and counted, then dropped. */
const checkOnly = newScan();

export class Leg implements PendingUdp, DohWaiter {
  readonly endpoint: Endpoint;
  private readonly packet: Buffer;
  /** The pooled socket this leg waits on, and its ID there. */
  private slot: UdpSlot | null = null;
  private udpId = 0;
  /** The pooled stream connection this leg waits on, and its ID there. */
  private conn: QueryConn | null = null;
  private connId = 0;
  private resends = 0;
  private refusals = 0;
  private retried = false;
  private tcp: TcpExchange | null = null;
  private done = false;

  constructor(
    readonly upstream: Upstream,
    query: Buffer,
    private readonly qEnd: number,
    private readonly wantTtls: boolean,
    private readonly owner: LegOwner,
    /** performance.now() when the leg was sent. */
    readonly started: number,
    private readonly probe = false,
  ) {
    this.endpoint = upstream.spec.endpoint;
    const s = upstream.stats;
    if (s.queries++ === 0) s.firstSentAt = started;
    s.inflight++;
    if (upstream.stream !== null) {
      const t = upstream.spec.transport;
      // Padded over TLS and HTTPS; EDNS keepalive only on DNS streams (HTTP/2 keeps its own connection).
      const p = withStreamOptions(query, t !== 'tcp', t !== 'https');
      this.packet = p === query ? Buffer.from(query) : p;
      this.overStream();
    } else {
      this.packet = Buffer.allocUnsafe(query.length);
      copyBytes(query, this.packet, 0, 0, query.length);
      s.bytesSent += query.length;
      this.slot = upstream.pool.send(this, this.packet, started);
      this.udpId = u16(this.packet, 0);
    }
  }

  /** Not finished: no reply or error yet, not abandoned. */
  get open(): boolean {
    return !this.done;
  }

  // The reply handlers (UDP, pooled stream, one-shot TCP) are the last resort
  // for what upstream data can do: an exception in one loses this leg (counted
  // as malformed and as a fault), never the socket, the connection or raced.
  onDatagram(msg: Buffer): void {
    if (this.done) return;
    try {
      const m = this.check(msg);
      if (m === null) return;
      if (u16(msg, 2) & FLAG_TC) {
        this.releaseUdp();
        this.overTcp();
        return;
      }
      this.accept(msg, m);
    } catch (err) {
      this.faulted(err);
    }
  }

  onMessage(msg: Buffer, conn: QueryConn): void {
    if (this.done) return;
    try {
      const m = this.check(msg);
      if (m === null) {
        // DoH: the stream carried the one reply there will be; a bad one fails the leg now.
        if (this.upstream.stream instanceof DohPool) {
          this.upstream.stream.stats.httpErrors.body++;
          this.fail('https');
        }
        return;
      }
      const k = takeStreamOptions(msg, m);
      if (k.keepalive >= 0) conn.serverKeepalive(k.keepalive);
      this.accept(k.msg, k.scan);
    } catch (err) {
      this.faulted(err);
    }
  }

  private faulted(err: unknown): void {
    this.upstream.events.fault(this.upstream, err);
    this.fail('malformed');
  }

  onHttpError(_kind: HttpErrorKind, _detail: string): void {
    this.fail('https');
  }

  onLost(established: boolean, refused = false): void {
    this.conn = null;
    if (this.done) return;
    // The server closed a connection this query was on: send it again on another, within the race's deadline.
    // Refused streams were never processed: a server draining connections one after another may refuse a query more often.
    if (established && (refused ? this.refusals++ < MAX_REFUSALS : this.resends++ < MAX_RESENDS)) return this.overStream();
    // A connection that failed to come up right after the server was answering (this leg's connection just went
    // away, or a valid reply came within the last second): a server restarting, whose old process resets what
    // waited in its accept queue. One more try shortly after, still within the race's deadline.
    const justAnswered = this.resends > 0 || this.refusals > 0 || performance.now() - this.upstream.health.lastGood < RESTART_WINDOW_MS;
    if (!established && justAnswered && !this.retried) {
      this.retried = true;
      const t = setTimeout(() => {
        if (!this.done) this.overStream();
      }, RETRY_AFTER_MS);
      t.unref();
      return;
    }
    this.fail(this.streamError());
  }

  /** Counts a received message; its scan when it answers this leg, else null (counted, keep waiting: RFC 5452 §9.1). */
  private check(msg: Buffer): Scan | null {
    const stats = this.upstream.stats;
    stats.bytesReceived += msg.length;
    const m = matchReply(msg, this.packet, this.qEnd, this.wantTtls, this.owner.decided ? checkOnly : null);
    if (typeof m !== 'string') return m;
    stats.errors[m === 'malformed' ? 'malformed' : 'mismatch']++;
    return null;
  }

  private accept(msg: Buffer, m: Scan): void {
    if (this.done) return;
    this.done = true;
    this.release();
    const at = performance.now();
    const s = this.upstream.stats;
    const rcode = m.rcode;
    s.latency.observe((at - this.started) / 1000);
    s.rcodes[rcode < 24 ? rcode : 23]!++;
    if (rcode === Rcode.SERVFAIL) s.errors.servfail++;
    else if (rcode === Rcode.REFUSED) s.errors.refused++;
    this.upstream.health.success(rcode === Rcode.NOERROR || rcode === Rcode.NXDOMAIN, at);
    this.owner.legAnswered(this, msg, m, at);
  }

  onForeign(): void {
    if (!this.done) this.upstream.stats.errors.mismatch++;
  }

  onSocketError(): void {
    this.slot = null;
    this.fail('network');
  }

  /** The race is over or the deadline passed: stop waiting. */
  abandon(asTimeout: boolean): void {
    if (this.done) return;
    if (asTimeout) return this.fail('timeout', false);
    this.done = true;
    this.release();
  }

  private overStream(): void {
    // A down upstream is asked only when the strategy has nothing better: worth a connection attempt.
    const sent = this.upstream.stream!.send(this, this.packet, this.probe || !this.upstream.health.up);
    if (sent === null) {
      // In its backoff after a failed connection: fail now, but not inside the caller's own call.
      queueMicrotask(() => this.fail(this.streamError()));
      return;
    }
    this.conn = sent.conn;
    this.connId = sent.id;
    this.upstream.stats.bytesSent += this.packet.length;
  }

  /** How a leg that could not get a stream connection is counted. */
  private streamError(): ErrorKind {
    const t = this.upstream.spec.transport;
    return t === 'https' ? 'https' : t === 'tls' ? 'tls' : 'tcp';
  }

  private overTcp(): void {
    put16(this.packet, 0, random16());
    const stats = this.upstream.stats;
    stats.bytesSent += this.packet.length;
    this.tcp = tcpExchange(
      this.endpoint,
      this.packet,
      (msg) => {
        try {
          const m = this.check(msg);
          if (m !== null) this.accept(msg, m);
        } catch (err) {
          this.faulted(err);
        }
      },
      () => this.fail('tcp'),
    );
  }

  private fail(error: ErrorKind, notify = true): void {
    if (this.done) return;
    this.done = true;
    this.release();
    this.upstream.stats.errors[error]++;
    if (error === 'timeout' || error === 'network' || error === 'tcp' || error === 'tls' || error === 'https') this.upstream.health.failure();
    if (notify) this.owner.legFailed(this, error);
  }

  private releaseUdp(): void {
    this.slot?.release(this.udpId, this);
    this.slot = null;
  }

  private release(): void {
    this.releaseUdp();
    this.conn?.release(this.connId, this);
    this.conn = null;
    this.tcp?.cancel();
    this.tcp = null;
    this.upstream.stats.inflight--;
  }
}
