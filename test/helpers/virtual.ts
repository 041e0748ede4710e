// Races without sockets or real time, for unit tests of the race rule and the
// strategies. Real Upstream, Leg, Race, Deadlines and strategies run; only
// two things are stand-ins:
// - the UDP pool: send() records the leg (and writes a random ID into its
//   packet, as the real pool does); a test "receives" a datagram by handing
//   bytes to leg.onDatagram(), which is what the pool's socket does after it
//   has checked the source address;
// - the clock: performance.now() and setTimeout are mocked (node:test), and
//   advance(ms) moves both one millisecond at a time, so the race's delay
//   timer, the deadline lists and every latency see the same virtual time.
import type { TestContext } from 'node:test';
import { performance } from 'node:perf_hooks';
import dnsPacket from 'dns-packet';
import { Upstream, parseUpstream, type Leg } from '../../src/upstream/upstream.js';
import type { PendingUdp, UdpPool, UdpSlot } from '../../src/upstream/udp-pool.js';
import { Race, RaceStats, type RaceOwner, type RaceRules } from '../../src/race.js';
import { Deadlines } from '../../src/deadlines.js';
import type { Strategy } from '../../src/strategy/strategy.js';
import type { Scan } from '../../src/wire/message.js';

export class VirtualClock {
  now = 1_000;

  constructor(private readonly t: TestContext) {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    t.mock.method(performance, 'now', () => this.now);
  }

  /** Moves time on by `ms`, running every timer that falls due, each at its own millisecond. */
  advance(ms: number): void {
    for (let i = 0; i < ms; i++) {
      this.now++;
      this.t.mock.timers.tick(1);
    }
  }
}

/** One leg as the stand-in pool saw it go out. */
export interface Sent {
  upstream: string;
  leg: Leg;
  packet: Buffer;
  at: number;
  released: boolean;
  /** A health probe (`. NS`), not a leg of a race. */
  probe: boolean;
}

/** The stand-in pool: every send recorded, in order, for all upstreams that share it. */
export class RecordingPool {
  readonly sent: Sent[] = [];
  private nextId = 0x1234;

  send(leg: PendingUdp, packet: Buffer, now: number): UdpSlot {
    // A fresh ID per leg, as the real pool gives (predictable here, so tests can aim a wrong one).
    this.nextId = (this.nextId + 0x0101) & 0xffff;
    packet.writeUInt16BE(this.nextId, 0);
    const l = leg as Leg;
    const probe = packet[12] === 0 && packet.readUInt16BE(13) === 2;
    const s: Sent = { upstream: l.upstream.label, leg: l, packet, at: now, released: false, probe };
    this.sent.push(s);
    return {
      release: (id, who) => {
        if (id === packet.readUInt16BE(0) && who === leg) s.released = true;
      },
    };
  }

  /** Race legs (no probes), oldest first. */
  legs(): Sent[] {
    return this.sent.filter((s) => !s.probe);
  }

  /** Upstream labels in the order race legs went out (probes left out). */
  order(): string[] {
    return this.legs().map((s) => s.upstream);
  }

  /** `label@ms` per race leg, ms after `t0`: when each upstream was asked. */
  timeline(t0: number): string[] {
    return this.legs().map((s) => `${s.upstream.slice(-4)}@${s.at - t0}`);
  }

  /** Health probes, as `label@ms` after `t0`. */
  probes(t0: number): string[] {
    return this.sent.filter((s) => s.probe).map((s) => `${s.upstream.slice(-4)}@${s.at - t0}`);
  }

  /** Race legs sent to `label`, oldest first. */
  to(label: string): Sent[] {
    return this.legs().filter((s) => s.upstream === label);
  }

  /** The one leg sent to `label`; fails if there is not exactly one. */
  one(label: string): Sent {
    const legs = this.to(label);
    if (legs.length !== 1) throw new Error(`${legs.length} legs to ${label}: ${this.order().join(', ')}`);
    return legs[0]!;
  }
}

/** Upstreams 127.0.0.1:5301.. over one recording pool; labels are the addresses. */
export function upstreams(n: number, pool = new RecordingPool()): { pool: RecordingPool; ups: Upstream[] } {
  const ups: Upstream[] = [];
  for (let i = 0; i < n; i++) ups.push(new Upstream(parseUpstream(`127.0.0.1:${5301 + i}`), pool as unknown as UdpPool));
  return { pool, ups };
}

/** Seeds an upstream's recent latency (seconds) as if it had answered this fast `n` times. */
export function measured(u: Upstream, seconds: number, n = 20): void {
  for (let i = 0; i < n; i++) u.stats.latency.observe(seconds);
  u.stats.queries += n;
}

/** An upstream query as the pipeline sends it: ID 0, RD, one question, no OPT. */
export function query(name = 'www.example', type: dnsPacket.RecordType = 'A'): { packet: Buffer; qEnd: number } {
  const packet = dnsPacket.encode({ type: 'query', id: 0, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type, class: 'IN' }] });
  return { packet, qEnd: packet.length };
}

export interface ReplyOptions {
  rcode?: number;
  /** Records of the answer section; default: one A 192.0.2.1 at the question name (for type A). */
  answers?: dnsPacket.Answer[];
  /** Adds an SOA to the authority section (negative answers). */
  soa?: boolean;
  /** Overrides: the ID, the question name or type, the QR bit. */
  id?: number;
  name?: string;
  type?: dnsPacket.RecordType;
  qr?: boolean;
}

/** A reply to the leg's own packet (its ID and question), changed as `o` says. */
export function replyTo(s: Sent, o: ReplyOptions = {}): Buffer {
  const q = dnsPacket.decode(s.packet).questions![0]!;
  const name = o.name ?? q.name;
  const type = o.type ?? q.type;
  const rcode = o.rcode ?? 0;
  const answers = o.answers ?? (rcode === 0 ? [{ name, type: 'A', ttl: 300, data: '192.0.2.1' } as dnsPacket.Answer] : []);
  const buf = dnsPacket.encode({
    type: 'response',
    id: o.id ?? s.packet.readUInt16BE(0),
    flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | rcode,
    questions: [{ name, type, class: 'IN' }],
    answers,
    authorities: o.soa ? [{ name: 'example', type: 'SOA', ttl: 60, data: { mname: 'ns.example', rname: 'h.example', serial: 1, refresh: 1, retry: 1, expire: 1, minimum: 60 } }] : [],
  } as dnsPacket.Packet);
  if (o.qr === false) buf[2] = buf[2]! & 0x7f;
  return buf;
}

export const NXDOMAIN = 3;
export const SERVFAIL = 2;
/** NOERROR with no record at all: NODATA. */
export const nodata: ReplyOptions = { answers: [], soa: true };
export const nxdomain: ReplyOptions = { rcode: NXDOMAIN, soa: true };

/** How a race ended, as its owner heard it, with the virtual time. */
export type Outcome = { won: string; reply: Buffer; scan: Scan; at: number } | { lost: number; reason: 'lost' | 'timeout'; ede: number; at: number };

export interface RaceRun {
  race: Race;
  stats: RaceStats;
  deadlines: Deadlines;
  graces: Deadlines;
  /** Every call the owner got: a race must make exactly one. */
  outcomes: Outcome[];
}

/** Starts a race the way the pipeline does, on the virtual clock. */
export function startRace(
  clock: VirtualClock,
  ups: readonly Upstream[],
  strategy: Strategy,
  o: { timeoutMs?: number; graceMs?: number; q?: { packet: Buffer; qEnd: number }; rules?: Partial<RaceRules>; stats?: RaceStats; startedAt?: number } = {},
): RaceRun {
  const { packet, qEnd } = o.q ?? query();
  const outcomes: Outcome[] = [];
  const owner: RaceOwner = {
    raceWon: (reply, scan, winner) => void outcomes.push({ won: winner.label, reply, scan, at: clock.now }),
    raceLost: (rcode, reason, ede) => void outcomes.push({ lost: rcode, reason, ede, at: clock.now }),
  };
  const deadlines = new Deadlines();
  const graces = new Deadlines();
  const stats = o.stats ?? new RaceStats();
  const rules: RaceRules = { negativeGraceMs: o.graceMs ?? -1, graces, addresses: null, log: null, ...o.rules };
  const race = new Race(packet, qEnd, ups, strategy, stats, deadlines, false, owner, rules);
  race.start(o.timeoutMs ?? 2000, o.startedAt ?? clock.now);
  return { race, stats, deadlines, graces, outcomes };
}
