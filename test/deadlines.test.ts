import { test } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { Deadlines, type Timed } from '../src/deadlines.js';
import { copyBytes, put16, put32, u16, u32 } from '../src/wire/bytes.js';

function item(name: string, log: string[]): Timed & { name: string; firedAt: number } {
  const t = {
    name,
    firedAt: NaN,
    dlPrev: null as Timed | null,
    dlNext: null as Timed | null,
    dlAt: NaN,
    expire(): void {
      t.firedAt = performance.now();
      log.push(name);
    },
  };
  return t;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

test('deadlines: expire in time order, each at its time; removed ones never', async () => {
  const d = new Deadlines();
  const log: string[] = [];
  const t0 = performance.now();
  const a = item('a', log);
  const b = item('b', log);
  const c = item('c', log);
  const e = item('e', log);
  // Added out of order: the list keeps them sorted.
  d.add(c, t0 + 250);
  d.add(a, t0 + 50);
  d.add(e, t0 + 450);
  d.add(b, t0 + 150);
  d.remove(b);
  d.remove(b); // twice is harmless
  await sleep(150);
  assert.deepEqual(log, ['a']);
  await sleep(200);
  assert.deepEqual(log, ['a', 'c']);
  // Never early (the timer's millisecond clock may round by one).
  assert.ok(a.firedAt >= t0 + 49, `a fired ${a.firedAt - t0} ms after start`);
  assert.ok(c.firedAt >= t0 + 249, `c fired ${c.firedAt - t0} ms after start`);
  // The head went away early: the timer still serves the next one.
  d.remove(e);
  const f = item('f', log);
  d.add(f, performance.now() + 10);
  await sleep(100);
  assert.deepEqual(log, ['a', 'c', 'f']);
});

test('deadlines: expireAll ends every listed entry at once, and an entry may be added again', () => {
  const d = new Deadlines();
  const log: string[] = [];
  const x = item('x', log);
  const y = item('y', log);
  d.add(y, performance.now() + 60_000);
  d.add(x, performance.now() + 30_000);
  d.expireAll();
  assert.deepEqual(log, ['x', 'y']);
  assert.ok(Number.isNaN(x.dlAt));
  d.add(x, performance.now() + 30_000);
  d.remove(x);
  d.expireAll();
  assert.deepEqual(log, ['x', 'y']);
});

test('bytes: big-endian reads and writes, copies short and long', () => {
  const b = Buffer.alloc(8);
  put16(b, 0, 0xbeef);
  put32(b, 2, 0xfedcba98);
  assert.equal(b.readUInt16BE(0), 0xbeef);
  assert.equal(b.readUInt32BE(2), 0xfedcba98);
  assert.equal(u16(b, 0), 0xbeef);
  assert.equal(u32(b, 2), 0xfedcba98); // unsigned, not negative
  for (const n of [5, 64, 65, 300]) {
    const src = Buffer.from(Array.from({ length: n + 10 }, (_, i) => i & 0xff));
    const dst = Buffer.alloc(n + 20);
    copyBytes(src, dst, 7, 3, 3 + n);
    assert.deepEqual(dst.subarray(7, 7 + n), src.subarray(3, 3 + n), `${n} bytes`);
    assert.equal(dst[6], 0);
    assert.equal(dst[7 + n], 0);
  }
});
