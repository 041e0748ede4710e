// One race: the strategy says which upstreams to ask and when; this file
// alone says what wins.
//
// The race rule:
// - a reply counts only if it is valid for its leg (wire/match.ts);
// - a reply whose answer holds an --ignore-address address counts as no
//   reply; one that --stop-dns-rebind refuses loses like a REFUSED; one with a
//   --bogus-nxdomain address is read as NXDOMAIN (wire/filter.ts);
// - a positive answer (NOERROR with a record of the asked type at the name
//   or its CNAME target) wins at once and ends the race;
// - a negative answer (NXDOMAIN, or NOERROR without such a record: NODATA)
//   wins only when another upstream gives the same kind of negative answer,
//   when no other leg is open, or when the negative grace has passed; a
//   positive answer before that wins instead and the negatives it beat are
//   counted as overruled. Grace 0: the first negative wins at once;
// - SERVFAIL, REFUSED, NOTIMP, FORMERR and the rest lose while any leg is
//   still pending or the strategy still has upstreams to ask;
// - once every leg has lost: the upstreams' common losing RCODE if they all
//   gave the same one, else SERVFAIL; at the deadline: SERVFAIL.
// Legs still open after a win are kept until they answer or the deadline
// passes, so that their latency and loss are recorded, then released.
//
// The hot path allocates little here: the race is its legs' owner (no
// closure per leg), outcomes arrive as arguments (no object per reply), and
// the deadline is a link in the pipeline's shared list (no timer per race).
// A held negative answer costs one small object, linked in a second shared
// list for its grace.
import { performance } from 'node:perf_hooks';
import { notBefore } from './timer.js';
import { Rcode } from './wire/constants.js';
import { nameToText, scanMessage, typeName, type Scan } from './wire/message.js';
import { NEG_NODATA, NEG_NXDOMAIN, POSITIVE, negativeKind, type AnswerKind } from './wire/match.js';
import { ADDR_BOGUS, ADDR_IGNORE, ADDR_REBIND, asNxdomain, type AddressRules } from './wire/filter.js';
import { EDE } from './wire/ede.js';
import { u16 } from './wire/bytes.js';
import type { Leg, LegOwner, Upstream } from './upstream/upstream.js';
import type { RaceView, Strategy } from './strategy/strategy.js';
import type { Deadlines, Timed } from './deadlines.js';
import { LatencyTracker, bucketIndex, type ErrorKind } from './upstream/stats.js';
import type { Logger } from './log.js';
import { LEG_ERROR, LEG_GOOD, LEG_LOSING, LEG_TIMEOUT, type RaceWindow } from './tradeoff/window.js';
import { armProbes } from './tradeoff/lag.js';

/** Who hears how a race ended: exactly one call per race. */
export interface RaceOwner {
  raceWon(reply: Buffer, scan: Scan, winner: Upstream): void;
  /** `ede`: the Extended DNS Error code (RFC 8914) that explains the failure, -1 for none. */
  raceLost(rcode: number, reason: 'lost' | 'timeout', ede: number): void;
}

/** What a race needs besides its query: fixed for a pipeline, shared by its races. */
export interface RaceRules {
  /** Milliseconds a negative answer waits for agreement; 0: the first valid answer wins; -1: derived (negativeGraceMs()). */
  negativeGraceMs: number;
  /** The shared deadline list of negative answers on hold. */
  graces: Deadlines;
  /** --ignore-address, --bogus-nxdomain, --stop-dns-rebind; null when none is set. */
  addresses: AddressRules | null;
  /** For the debug line naming an overruled upstream; null: no line. */
  log: Logger | null;
  /** The trade-off window that records every leg of races on its upstream set; null/absent: none. */
  window?: RaceWindow | null;
}

/** Upper bound of the derived negative grace, milliseconds. */
export const NEGATIVE_GRACE_CAP_MS = 100;
/** Lower bound of the derived grace: the deadline list's resolution. */
export const NEGATIVE_GRACE_MIN_MS = 1;
/**
 * Headroom over an upstream's recent p95: a steady upstream's p95 is close to
 * its every reply, so waiting exactly that long would lose a race against
 * jitter about half the time. 1.5 x p95 + 2 ms (event-loop delay) keeps the
 * wait a small multiple of what the upstream normally takes.
 */
const GRACE_P95_FACTOR = 1.5;
const GRACE_SLACK_MS = 2;

/** Upper bounds of the fan-out histogram (legs per race). */
export const FANOUT_BUCKETS = [1, 2, 3, 4, 6, 8, 16];

/** Race-level counters, plain numbers for the metrics layer. */
export class RaceStats {
  /** Races by number of legs sent, non-cumulative per FANOUT_BUCKETS, last slot +Inf. */
  readonly fanout = new Float64Array(FANOUT_BUCKETS.length + 1);
  races = 0;
  /** Upstream legs sent, summed over races (fan-out = legs / races). */
  legs = 0;
  /** Legs that did not produce the answer. */
  wasted = 0;
  failed = 0;
  timedOut = 0;
  /** Seconds between the winner and the next valid reply. */
  readonly margin = new LatencyTracker();
}

const MIXED = -1;
const NONE = -2;

export function isWinningRcode(rcode: number): boolean {
  return rcode === Rcode.NOERROR || rcode === Rcode.NXDOMAIN;
}

function isNetworkError(e: ErrorKind): boolean {
  return e === 'network' || e === 'tcp' || e === 'tls' || e === 'https';
}

/**
 * A negative answer waiting for agreement: the first one a race got, and who
 * else answered negatively (for agreement and the overruled count). It is
 * its own deadline-list entry, since the race's links hold the race deadline.
 */
class NegativeHold implements Timed {
  dlPrev: Timed | null = null;
  dlNext: Timed | null = null;
  dlAt = NaN;
  readonly from: Upstream[];
  readonly kinds: AnswerKind[];

  constructor(
    private readonly race: Race,
    readonly upstream: Upstream,
    readonly reply: Buffer,
    readonly scan: Scan,
    readonly kind: AnswerKind,
  ) {
    this.from = [upstream];
    this.kinds = [kind];
  }

  expire(): void {
    this.race.graceOver();
  }
}

export class Race implements RaceView, LegOwner, Timed {
  /** One slot per upstream: a race asks each at most once (an array grown from empty reserves 16). */
  private readonly legs: Leg[];
  private nLegs = 0;
  private openLegs = 0;
  private settled = false;
  private winner: Upstream | null = null;
  /** The answer given was positive: later negatives are overruled by it. */
  private wonPositive = false;
  /** performance.now() of the win; 0 once the margin to the next valid reply is taken. */
  private wonAt = 0;
  private losing = NONE;
  /** Legs that ended in a network, TCP or TLS error; a reply --stop-dns-rebind refused. */
  private netFailed = 0;
  private blocked = false;
  private hold: NegativeHold | null = null;
  private delayTimer: NodeJS.Timeout | null = null;
  /** This race's handle in the trade-off window it started in (a reload may replace the pipeline's); -1: not recorded. */
  private rec = -1;
  private recIn: RaceWindow | null = null;
  /** performance.now() when the client's query came in (legs sent with it start then). */
  private startedAt = 0;
  plan: readonly Upstream[];
  dlPrev: Timed | null = null;
  dlNext: Timed | null = null;
  dlAt = NaN;

  constructor(
    private readonly query: Buffer,
    private readonly qEnd: number,
    readonly upstreams: readonly Upstream[],
    private readonly strategy: Strategy,
    private readonly stats: RaceStats,
    private readonly deadlines: Deadlines,
    private readonly wantTtls: boolean,
    private readonly owner: RaceOwner,
    private readonly rules: RaceRules,
  ) {
    this.plan = upstreams;
    this.legs = new Array<Leg>(upstreams.length);
  }

  /** `now`: performance.now() when the client's query came in; the deadline runs from there. */
  start(timeoutMs: number, now: number): void {
    this.stats.races++;
    this.startedAt = now;
    const w = this.rules.window;
    if (w != null && w.set === this.upstreams) {
      this.recIn = w;
      this.rec = w.begin(now);
      const probes = this.rec >= 0 ? w.probeFor(this.rec, now) : null;
      if (probes !== null) armProbes(w, this.rec, probes, now);
    }
    this.deadlines.add(this, now + timeoutMs);
    this.launch(this.strategy.first(this), now);
    if (this.openLegs === 0) return this.lose();
    this.scheduleDelay(now);
  }

  asked(u: Upstream): boolean {
    for (let i = 0; i < this.nLegs; i++) if (this.legs[i]!.upstream === u) return true;
    return false;
  }

  pendingUpstreams(): Upstream[] {
    const out: Upstream[] = [];
    for (let i = 0; i < this.nLegs; i++) if (this.legs[i]!.open) out.push(this.legs[i]!.upstream);
    return out;
  }

  private launch(list: readonly Upstream[], now: number): void {
    for (let i = 0; i < list.length; i++) {
      const u = list[i]!;
      if (this.asked(u)) continue;
      this.openLegs++;
      this.stats.legs++;
      this.legs[this.nLegs++] = u.ask(this.query, this.qEnd, this.wantTtls, this, now);
    }
  }

  /** The strategy's next timer, `ms` after `from` (performance.now()): the query's arrival for the first, else now. */
  private scheduleDelay(from = performance.now()): void {
    if (this.settled) return;
    const ms = this.strategy.delay(this);
    if (ms < 0) return;
    notBefore(
      ms,
      () => {
        this.delayTimer = null;
        if (this.settled) return;
        const before = this.nLegs;
        this.launch(this.strategy.next(this, 'delay'), performance.now());
        if (this.nLegs > before) this.scheduleDelay();
      },
      (t) => (this.delayTimer = t),
      from + ms,
    );
  }

  /** Once settled, a later reply only needs to be checked and counted, not kept. */
  get decided(): boolean {
    return this.settled;
  }

  legAnswered(leg: Leg, reply: Buffer, scan: Scan, at: number): void {
    this.openLegs--;
    if (this.rec >= 0) this.note(leg, at, isWinningRcode(scan.rcode) ? LEG_GOOD : LEG_LOSING + Math.min(scan.rcode, 23), reply.length);
    if (this.settled) {
      if (this.wonAt > 0) {
        this.stats.margin.observe((at - this.wonAt) / 1000);
        this.wonAt = 0;
      }
      // A negative answer that came after a positive one won was overruled as well.
      if (this.wonPositive && isWinningRcode(scan.rcode)) {
        const kind = negativeKind(reply, scan, this.qtype());
        if (kind !== POSITIVE) this.overruled(leg.upstream, kind, this.winner!);
      }
      return this.maybeCleanup();
    }
    const u = leg.upstream;
    const rules = this.rules.addresses;
    if (rules !== null && scan.rcode === Rcode.NOERROR && scan.ancount > 0) {
      const verdict = rules.check(reply, scan);
      if (verdict === ADDR_IGNORE) {
        u.stats.errors.ignored++;
        return this.lost(Rcode.SERVFAIL);
      }
      if (verdict === ADDR_REBIND) {
        u.stats.errors.rebind++;
        this.blocked = true;
        if (this.rules.log?.enabled('debug')) this.rules.log.debug(`rebind: ${this.describe()} from ${u.label} holds a private address; refused`);
        return this.lost(Rcode.REFUSED);
      }
      if (verdict === ADDR_BOGUS) {
        reply = asNxdomain(reply, scan);
        scan = scanMessage(reply, this.wantTtls)!;
      }
    }
    if (!isWinningRcode(scan.rcode)) return this.lost(scan.rcode);
    const kind = negativeKind(reply, scan, this.qtype());
    if (kind === POSITIVE || this.rules.negativeGraceMs === 0) return this.win(u, reply, scan, at, kind === POSITIVE);
    this.negative(u, reply, scan, kind, at);
  }

  legFailed(leg: Leg, error: ErrorKind): void {
    this.openLegs--;
    if (this.rec >= 0) this.note(leg, performance.now(), error === 'timeout' ? LEG_TIMEOUT : LEG_ERROR, 0);
    if (this.settled) return this.maybeCleanup();
    if (isNetworkError(error)) this.netFailed++;
    this.lost(Rcode.SERVFAIL);
  }

  /** A negative answer: held for agreement unless it is the last word. */
  private negative(u: Upstream, reply: Buffer, scan: Scan, kind: AnswerKind, at: number): void {
    const h = this.hold;
    if (h === null) {
      // A strategy with one leg out may ask another upstream now (hedged); the others answer at once.
      this.launch(this.strategy.next(this, 'negative'), at);
      if (this.openLegs === 0) return this.win(u, reply, scan, at, false);
      this.hold = new NegativeHold(this, u, reply, scan, kind);
      this.rules.graces.add(this.hold, at + this.graceMs(at));
      return;
    }
    h.from.push(u);
    h.kinds.push(kind);
    // Agreement: a second upstream with the same kind of negative answer.
    let same = 0;
    for (let i = 0; i < h.kinds.length; i++) if (h.kinds[i] === kind) same++;
    if (same >= 2) return kind === h.kind ? this.winHeld(at) : this.win(u, reply, scan, at, false);
    if (this.openLegs === 0) this.winHeld(at);
  }

  /**
   * How long a negative answer arriving at `at` waits: fixed by the rules, or
   * until the slowest healthy open leg's upstream would have answered by its
   * recent p95 with headroom (measured from that leg's start), within [MIN, CAP]. An open
   * upstream that has never answered gets the cap during the first CAP ms after it was first
   * asked, and is not waited for after that; one marked down is not waited for.
   */
  private graceMs(at: number): number {
    const fixed = this.rules.negativeGraceMs;
    if (fixed >= 0) return fixed;
    let until = at;
    for (let i = 0; i < this.nLegs; i++) {
      const leg = this.legs[i]!;
      if (!leg.open || !leg.upstream.health.up) continue;
      const stats = leg.upstream.stats;
      const p95 = stats.latency.quantile(0.95);
      if (Number.isNaN(p95)) {
        // Never answered: worth the cap while it is new; asked for longer than that and still silent, not waited for.
        if (at - stats.firstSentAt > NEGATIVE_GRACE_CAP_MS) continue;
        return NEGATIVE_GRACE_CAP_MS;
      }
      const end = leg.started + p95 * 1000 * GRACE_P95_FACTOR + GRACE_SLACK_MS;
      if (end > until) until = end;
    }
    return Math.min(NEGATIVE_GRACE_CAP_MS, Math.max(NEGATIVE_GRACE_MIN_MS, Math.ceil(until - at)));
  }

  /** The grace of the held negative passed (its deadline-list entry fired). */
  graceOver(): void {
    if (!this.settled && this.hold !== null) this.winHeld(performance.now());
  }

  private winHeld(at: number): void {
    const h = this.hold!;
    this.win(h.upstream, h.reply, h.scan, at, false);
  }

  private lost(rcode: number): void {
    this.losing = this.losing === NONE || this.losing === rcode ? rcode : MIXED;
    const before = this.nLegs;
    const othersOpen = this.openLegs > 0;
    this.launch(this.strategy.next(this, 'lost'), performance.now());
    // When the leg that lost was the only one open, the timer was its own: the
    // upstream asked in its place gets a whole try (or hedge) delay, not what
    // was left (under ordered it was marked down for missing a timeout it was
    // never given). With other legs open the timer is theirs and stays: a
    // hedge they are owed must not wait for the newcomer's delay.
    if (this.nLegs > before && !othersOpen && this.delayTimer !== null) {
      this.clearDelay();
      this.scheduleDelay();
    }
    if (this.openLegs > 0) return;
    if (this.hold !== null) return this.winHeld(performance.now());
    this.lose();
  }

  private win(u: Upstream, reply: Buffer, scan: Scan, at: number, positive: boolean): void {
    this.settled = true;
    this.winner = u;
    this.wonAt = at;
    this.wonPositive = positive;
    u.stats.wins++;
    this.clearDelay();
    const h = this.hold;
    if (h !== null) {
      this.rules.graces.remove(h);
      if (positive) for (let i = 0; i < h.from.length; i++) this.overruled(h.from[i]!, h.kinds[i]!, u);
    }
    this.owner.raceWon(reply, scan, u);
    this.maybeCleanup();
  }

  private overruled(neg: Upstream, kind: AnswerKind, by: Upstream): void {
    const name = kind === NEG_NXDOMAIN ? 'nxdomain' : 'nodata';
    neg.stats.overruled[name]++;
    const log = this.rules.log;
    if (log !== null && log.enabled('debug')) log.debug(`overruled: ${this.describe()}: ${kind === NEG_NODATA ? 'NODATA' : 'NXDOMAIN'} from ${neg.label}, answer from ${by.label}`);
  }

  private lose(): void {
    this.settled = true;
    this.stats.failed++;
    this.clearDelay();
    // Say why only when raced knows: every leg cut off by the network, or an answer refused here.
    const ede = this.blocked ? EDE.BLOCKED : this.netFailed === this.nLegs && this.nLegs > 0 ? EDE.NETWORK_ERROR : -1;
    this.owner.raceLost(this.losing >= 0 ? this.losing : Rcode.SERVFAIL, 'lost', ede);
    this.maybeCleanup();
  }

  /** The deadline passed (Timed): the held negative if any, else SERVFAIL; open legs end as timeouts. */
  expire(): void {
    if (!this.settled) {
      if (this.hold !== null) {
        this.winHeld(performance.now());
      } else {
        this.settled = true;
        this.stats.timedOut++;
        this.clearDelay();
        this.owner.raceLost(Rcode.SERVFAIL, 'timeout', this.blocked ? EDE.BLOCKED : EDE.NO_REACHABLE_AUTHORITY);
      }
    }
    for (let i = 0; i < this.nLegs; i++) {
      const leg = this.legs[i]!;
      if (!leg.open) continue;
      this.openLegs--;
      if (this.rec >= 0) this.note(leg, performance.now(), LEG_TIMEOUT, 0);
      leg.abandon(true);
    }
    this.maybeCleanup();
  }

  /** Records how a leg ended in the trade-off window: a few stores into typed arrays. */
  private note(leg: Leg, at: number, outcome: number, replyBytes: number): void {
    const ups = this.upstreams;
    let i = 0;
    while (i < ups.length && ups[i] !== leg.upstream) i++;
    this.recIn!.leg(this.rec, i, at - leg.started, outcome, this.query.length + replyBytes, leg.started > this.startedAt);
  }

  private qtype(): number {
    return u16(this.query, this.qEnd - 4);
  }

  /** The question for log lines (slow path). */
  private describe(): string {
    return `${nameToText(this.query)} ${typeName(this.qtype())}`;
  }

  private clearDelay(): void {
    if (this.delayTimer) clearTimeout(this.delayTimer);
    this.delayTimer = null;
  }

  private maybeCleanup(): void {
    if (this.openLegs > 0) return;
    this.deadlines.remove(this);
    const n = this.nLegs;
    for (let i = 0; i < n; i++) if (this.legs[i]!.upstream !== this.winner) this.legs[i]!.upstream.stats.losses++;
    this.stats.wasted += n - (this.winner ? 1 : 0);
    this.stats.fanout[bucketIndex(FANOUT_BUCKETS, n)]!++;
  }
}
