// A UDP relay in front of a real upstream (nsd) that injects faults — delay
// with jitter, silence, SERVFAIL — and counts what reaches the upstream, so
// benchmarks measure upstream traffic at the upstream, not as raced reports it.
import dgram from 'node:dgram';
import { PreciseTimers } from './precise-timer.js';

export interface Faults {
  /** Added to every reply, milliseconds. */
  delayMs: number;
  /** Uniform extra delay in [0, jitterMs). */
  jitterMs: number;
  /** Drop every query (a dead upstream). */
  dead: boolean;
  /** Share of queries answered SERVFAIL at once instead of relayed, 0..1. */
  servfailRate: number;
  /** Share of queries (0..1) dropped without a word: the leg times out. */
  dropShare?: number;
  /**
   * Answer NXDOMAIN (after the delay) for every name h<i>… with i a multiple of this, instead of
   * relaying: an upstream that does not know a fixed share of the names (split horizon, filter). 0: off.
   */
  nxdomainEvery?: number;
  /** Share of replies (0..1) sent `lateMs` after the query instead: a latency tail. */
  lateShare?: number;
  lateMs?: number;
}

export class FaultProxy {
  readonly front = dgram.createSocket('udp4');
  private readonly back = dgram.createSocket('udp4');
  private readonly waiting = new Map<number, { port: number; address: string; id: number }>();
  private nextId = 0;
  faults: Faults = { delayMs: 0, jitterMs: 0, dead: false, servfailRate: 0 };
  queries = 0;
  bytesIn = 0;
  bytesOut = 0;
  /** Delays off the loop's millisecond grid (precise-timer.ts says why); one timer thread for all proxies. */
  private readonly timers = PreciseTimers.shared();
  private closed = false;

  private constructor(private readonly upstreamPort: number) {}

  static async start(upstreamPort: number): Promise<FaultProxy> {
    const p = new FaultProxy(upstreamPort);
    p.front.on('message', (msg, r) => p.onQuery(msg, r));
    p.back.on('message', (msg) => p.onReply(msg));
    p.front.on('error', () => {});
    p.back.on('error', () => {});
    await new Promise<void>((res) => p.front.bind(0, '127.0.0.1', res));
    await new Promise<void>((res) => p.back.bind(0, '127.0.0.1', res));
    return p;
  }

  get port(): number {
    return this.front.address().port;
  }

  resetCounters(): void {
    this.queries = 0;
    this.bytesIn = 0;
    this.bytesOut = 0;
    this.timers.resetLate();
  }

  /** The longest a delayed reply went out after its due time since resetCounters() (any proxy of this process), ms. */
  get lateMaxMs(): number {
    return this.timers.lateMaxMs;
  }

  private onQuery(msg: Buffer, r: dgram.RemoteInfo): void {
    if (msg.length < 12) return;
    this.queries++;
    this.bytesIn += msg.length;
    const f = this.faults;
    if (f.dead) return;
    if (f.dropShare !== undefined && f.dropShare > 0 && Math.random() < f.dropShare) return;
    if (f.servfailRate > 0 && Math.random() < f.servfailRate) {
      const out = Buffer.from(msg);
      out[2] = (out[2]! | 0x80) & 0xf9; // QR=1, AA=0, TC=0
      out[3] = 0x82; // RA, SERVFAIL
      out.writeUInt32BE(0, 6); // AN=0, NS=0
      out.writeUInt16BE(0, 10); // AR=0
      const q = questionEnd(out);
      if (q < 0) return;
      this.send(out.subarray(0, q), r.port, r.address);
      return;
    }
    if (f.nxdomainEvery && nameIndex(msg) % f.nxdomainEvery === 0) {
      const out = Buffer.from(msg);
      out[2] = (out[2]! | 0x80) & 0xf9; // QR=1, AA=0, TC=0
      out[3] = 0x83; // RA, NXDOMAIN
      out.writeUInt32BE(0, 6); // AN=0, NS=0
      out.writeUInt16BE(0, 10); // AR=0
      const q = questionEnd(out);
      if (q < 0) return;
      this.later(out.subarray(0, q), r.port, r.address);
      return;
    }
    const id = this.nextId++ & 0xffff;
    this.waiting.set(id, { port: r.port, address: r.address, id: msg.readUInt16BE(0) });
    const out = Buffer.from(msg);
    out.writeUInt16BE(id, 0);
    this.back.send(out, this.upstreamPort, '127.0.0.1');
  }

  private onReply(msg: Buffer): void {
    const w = this.waiting.get(msg.readUInt16BE(0));
    if (!w) return;
    this.waiting.delete(msg.readUInt16BE(0));
    msg.writeUInt16BE(w.id, 0);
    this.later(msg, w.port, w.address);
  }

  /** Sends after the configured delay and jitter. */
  private later(msg: Buffer, port: number, address: string): void {
    const f = this.faults;
    const w = { port, address };
    const late = f.lateShare !== undefined && f.lateShare > 0 && Math.random() < f.lateShare;
    const delay = late ? (f.lateMs ?? 0) : f.delayMs + (f.jitterMs > 0 ? Math.random() * f.jitterMs : 0);
    if (delay <= 0) return this.send(msg, w.port, w.address);
    this.timers.after(delay, () => {
      if (!this.closed) this.send(msg, w.port, w.address);
    });
  }

  private send(msg: Buffer, port: number, address: string): void {
    this.bytesOut += msg.length;
    this.front.send(msg, port, address);
  }

  async close(): Promise<void> {
    this.closed = true;
    await new Promise<void>((r) => this.front.close(() => r()));
    await new Promise<void>((r) => this.back.close(() => r()));
  }
}

/** i of a question name h<i>.…; -1 for other names. */
function nameIndex(buf: Buffer): number {
  const len = buf[12] ?? 0;
  if (len < 2 || buf[13] !== 0x68 || 13 + len >= buf.length) return -1;
  const n = Number(buf.toString('latin1', 14, 13 + len));
  return Number.isInteger(n) ? n : -1;
}

function questionEnd(buf: Buffer): number {
  let off = 12;
  while (off < buf.length && buf[off]! !== 0) off += buf[off]! + 1;
  return off + 5 <= buf.length ? off + 5 : -1;
}
