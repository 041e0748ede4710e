// Timers off the millisecond grid, for stand-in upstreams. Node's setTimeout
// fires on libuv's loop clock, whole milliseconds of CLOCK_MONOTONIC: a
// stand-in that delays its reply by setTimeout(2.4) answers on the same
// millisecond ticks raced's hedge timer fires on, and a reply "2–3 ms late"
// becomes "at the third tick after the query" whatever the jitter. The
// stand-in's latency is then tied to raced's own timer phase, which no real
// upstream behind a network is, and a hedge delay of 3 ms races it tick for
// tick (measured: the hedge rate of hedged@3ms over a 2–3 ms upstream moved
// between 5 % and 30 % from run to run). Here a worker thread sleeps in
// Atomics.wait (a futex with a sub-millisecond timeout) until the next due
// time and posts the due ids back; the post wakes this thread's loop at once.
// One worker serves every stand-in of the process (shared()).
import { Worker } from 'node:worker_threads';

/** Entries the shared ring holds; far more than are ever pending at once here (hundreds). */
const CAPACITY = 1 << 16;

const WORKER = `
const { workerData, parentPort } = require('node:worker_threads');
const ctrl = new Int32Array(workerData.sab, 0, 2);
// ctrl[0]: entries written (by the main thread); ctrl[1]: entries read (here).
const ring = new Float64Array(workerData.sab, 8, ${CAPACITY} * 2);
const now = () => Number(process.hrtime.bigint()) / 1e6;
const due = [];
let read = 0;
for (;;) {
  const seq = Atomics.load(ctrl, 0);
  for (; read < seq; read++) {
    const k = (read % ${CAPACITY}) * 2;
    const e = { at: ring[k], id: ring[k + 1] };
    let i = due.length;
    while (i > 0 && due[i - 1].at > e.at) i--;
    due.splice(i, 0, e);
  }
  Atomics.store(ctrl, 1, read);
  const t = now();
  let n = 0;
  while (n < due.length && due[n].at <= t) n++;
  if (n > 0) {
    parentPort.postMessage(due.splice(0, n).map((e) => e.id));
    continue;
  }
  Atomics.wait(ctrl, 0, seq, due.length > 0 ? due[0].at - t : Infinity);
}
`;

export class PreciseTimers {
  private static one: PreciseTimers | null = null;
  /** The process's one timer thread (its worker is unref'd: it keeps nothing alive). */
  static shared(): PreciseTimers {
    return (PreciseTimers.one ??= new PreciseTimers());
  }

  private readonly sab = new SharedArrayBuffer(8 + CAPACITY * 16);
  private readonly ctrl = new Int32Array(this.sab, 0, 2);
  private readonly ring = new Float64Array(this.sab, 8, CAPACITY * 2);
  private readonly waiting = new Map<number, { due: number; fn: () => void }>();
  /** The latest a callback ran after its due time since resetLate(), ms: how long a reply was held up here. */
  lateMaxMs = 0;
  private readonly worker: Worker;
  private seq = 0;
  private nextId = 1;

  constructor() {
    this.worker = new Worker(WORKER, { eval: true, workerData: { sab: this.sab } });
    this.worker.on('message', (ids: number[]) => {
      const now = Number(process.hrtime.bigint()) / 1e6;
      for (const id of ids) {
        const w = this.waiting.get(id);
        if (w === undefined) continue;
        this.waiting.delete(id);
        if (now - w.due > this.lateMaxMs) this.lateMaxMs = now - w.due;
        w.fn();
      }
    });
    this.worker.unref();
  }

  /** Runs `fn` `ms` milliseconds from now (to a few tens of microseconds, not to the loop's millisecond). */
  after(ms: number, fn: () => void): void {
    if (this.seq - Atomics.load(this.ctrl, 1) >= CAPACITY) throw new Error('precise-timer: the timer thread is a whole ring behind');
    const id = this.nextId++;
    const due = Number(process.hrtime.bigint()) / 1e6 + ms;
    this.waiting.set(id, { due, fn });
    const k = (this.seq % CAPACITY) * 2;
    this.ring[k] = due;
    this.ring[k + 1] = id;
    this.seq++;
    Atomics.store(this.ctrl, 0, this.seq);
    Atomics.notify(this.ctrl, 0);
  }

  resetLate(): void {
    this.lateMaxMs = 0;
  }
}
