// One upstream resolver: how to reach it, its counters and its health.
// A leg is one query to one upstream; it knows nothing of races.
import { performance } from 'node:perf_hooks';
import { FLAG_TC, Rcode, Type, CLASS_IN } from '../wire/constants.js';
import { matchReply } from '../wire/match.js';
import type { Scan } from '../wire/message.js';
import { parseEndpoint, type Endpoint } from '../net/address.js';
import { Health } from './health.js';
import { UpstreamStats, type ErrorKind } from './stats.js';
import { random16, type PendingUdp, type UdpPool, type UdpSlot } from './udp-pool.js';
import { tcpExchange, type TcpExchange } from './tcp.js';

export type Transport = 'udp' | 'tcp';

export interface UpstreamSpec {
  endpoint: Endpoint;
  transport: Transport;
  /** As given by the user (minus scheme): the label in logs and metrics. */
  label: string;
}

/** Parses `ADDR[:PORT]`, `ADDR#PORT`, `[V6]:PORT`, optionally prefixed `udp://` or `tcp://`. */
export function parseUpstream(spec: string): UpstreamSpec {
  let transport: Transport = 'udp';
  let rest = spec.trim();
  const scheme = /^([a-z]+):\/\//.exec(rest);
  if (scheme) {
    if (scheme[1] !== 'udp' && scheme[1] !== 'tcp') throw new Error(`unknown upstream scheme '${scheme[1]}' in '${spec}'`);
    transport = scheme[1];
    rest = rest.slice(scheme[0].length);
  }
  const endpoint = parseEndpoint(rest, 53);
  return { endpoint, transport, label: endpoint.label };
}

export type LegOutcome =
  | { ok: true; reply: Buffer; scan: Scan; rcode: number; rtt: number }
  | { ok: false; error: ErrorKind };

export class Upstream {
  readonly stats = new UpstreamStats();
  readonly health: Health;
  readonly label: string;

  constructor(
    readonly spec: UpstreamSpec,
    readonly pool: UdpPool,
    onHealth: (u: Upstream, up: boolean) => void = () => {},
  ) {
    this.label = spec.label;
    this.health = new Health(
      (done) => this.probe(done),
      (up) => onHealth(this, up),
    );
  }

  /**
   * Sends `query` (an upstream query whose ID is overwritten per leg) and calls
   * `onOutcome` once: with a valid reply, or with an error. `leg.abandon()`
   * ends a leg that has not finished, counting it as a timeout or not.
   */
  ask(query: Buffer, qEnd: number, wantTtls: boolean, onOutcome: (o: LegOutcome) => void): Leg {
    return new Leg(this, query, qEnd, wantTtls, onOutcome);
  }

  private probe(done: (alive: boolean) => void): void {
    // `. NS`, RD set, no EDNS: any well-formed reply means the server is alive.
    const q = Buffer.from([0, 0, 0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, Type.NS, 0, CLASS_IN]);
    const leg = this.ask(q, q.length, false, (o) => {
      clearTimeout(timer);
      done(o.ok);
    });
    const timer = setTimeout(() => {
      leg.abandon(true);
      done(false);
    }, 2000);
    timer.unref();
  }
}

export class Leg implements PendingUdp {
  readonly endpoint: Endpoint;
  private readonly packet: Buffer;
  private readonly started = performance.now();
  /** The pooled socket this leg waits on, and its ID there. */
  private slot: UdpSlot | null = null;
  private udpId = 0;
  private tcp: TcpExchange | null = null;
  private done = false;

  constructor(
    readonly upstream: Upstream,
    query: Buffer,
    private readonly qEnd: number,
    private readonly wantTtls: boolean,
    private readonly onOutcome: (o: LegOutcome) => void,
  ) {
    this.endpoint = upstream.spec.endpoint;
    this.packet = Buffer.allocUnsafe(query.length);
    query.copy(this.packet);
    const s = upstream.stats;
    s.queries++;
    s.inflight++;
    if (upstream.spec.transport === 'tcp') {
      this.overTcp();
    } else {
      s.bytesSent += query.length;
      this.slot = upstream.pool.send(this, this.packet);
      this.udpId = this.packet.readUInt16BE(0);
    }
  }

  onDatagram(msg: Buffer): void {
    if (this.done) return;
    const m = this.check(msg);
    if (m === null) return;
    if (msg.readUInt16BE(2) & FLAG_TC) {
      this.releaseUdp();
      this.overTcp();
      return;
    }
    this.accept(msg, m);
  }

  /** Counts a received message; its scan when it answers this leg, else null (counted, keep waiting: RFC 5452 §9.1). */
  private check(msg: Buffer): Scan | null {
    const stats = this.upstream.stats;
    stats.bytesReceived += msg.length;
    const m = matchReply(msg, this.packet, this.qEnd, this.wantTtls);
    if (typeof m !== 'string') return m;
    stats.errors[m === 'malformed' ? 'malformed' : 'mismatch']++;
    return null;
  }

  private accept(msg: Buffer, m: Scan): void {
    this.finish({ ok: true, reply: msg, scan: m, rcode: m.rcode, rtt: (performance.now() - this.started) / 1000 });
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

  private overTcp(): void {
    this.packet.writeUInt16BE(random16(), 0);
    const stats = this.upstream.stats;
    stats.bytesSent += this.packet.length;
    this.tcp = tcpExchange(
      this.endpoint,
      this.packet,
      (msg) => {
        const m = this.check(msg);
        if (m !== null) this.accept(msg, m);
      },
      () => this.fail('tcp'),
    );
  }

  private finish(o: LegOutcome & { ok: true }): void {
    if (this.done) return;
    this.done = true;
    this.release();
    const s = this.upstream.stats;
    s.latency.observe(o.rtt);
    s.rcodes[o.rcode < 24 ? o.rcode : 23]!++;
    if (o.rcode === Rcode.SERVFAIL) s.errors.servfail++;
    else if (o.rcode === Rcode.REFUSED) s.errors.refused++;
    this.upstream.health.success();
    this.onOutcome(o);
  }

  private fail(error: ErrorKind, notify = true): void {
    if (this.done) return;
    this.done = true;
    this.release();
    this.upstream.stats.errors[error]++;
    if (error === 'timeout' || error === 'network' || error === 'tcp') this.upstream.health.failure();
    if (notify) this.onOutcome({ ok: false, error });
  }

  private releaseUdp(): void {
    this.slot?.release(this.udpId, this);
    this.slot = null;
  }

  private release(): void {
    this.releaseUdp();
    this.tcp?.cancel();
    this.tcp = null;
    this.upstream.stats.inflight--;
  }
}
