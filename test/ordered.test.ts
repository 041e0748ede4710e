// --strict-order: the primary first, fall back in order; a dead primary costs
// one per-try timeout in all, then is skipped until its probe succeeds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Stub } from './helpers/stub.js';
import { startRaced, udpQuery, firstData, sleep } from './helpers/client.js';

test('ordered: only the primary is asked while it answers', async () => {
  const p = await Stub.start({ address: '192.0.2.1' });
  const s = await Stub.start({ address: '192.0.2.2' });
  const r = await startRaced([p.label, s.label], { strategy: 'ordered', tryTimeoutMs: 200 });
  try {
    for (let i = 0; i < 5; i++) assert.equal(firstData((await udpQuery(r.port, `o${i}.example`)).packet), '192.0.2.1');
    assert.equal(p.count(), 5);
    assert.equal(s.count(), 0);
  } finally {
    await r.close();
    await p.close();
    await s.close();
  }
});

test('ordered: a losing RCODE moves on to the next upstream at once', async () => {
  const p = await Stub.start({ behaviour: 'servfail' });
  const s = await Stub.start({ address: '192.0.2.2' });
  // Try timeout and deadline 60 s: an answer within the client's 5 s means the SERVFAIL moved the race on.
  const r = await startRaced([p.label, s.label], { strategy: 'ordered', tryTimeoutMs: 60_000, timeoutMs: 60_000 });
  try {
    const { packet } = await udpQuery(r.port, 'sf.example');
    assert.equal(firstData(packet), '192.0.2.2');
  } finally {
    await r.close();
    await p.close();
    await s.close();
  }
});

test('ordered: a dead primary costs one short timeout in all, then is skipped and probed back', async () => {
  const p = await Stub.start({ behaviour: 'drop', address: '192.0.2.1' });
  const s = await Stub.start({ address: '192.0.2.2' });
  const r = await startRaced([p.label, s.label], { strategy: 'ordered', tryTimeoutMs: 150, timeoutMs: 2000 });
  try {
    const times: number[] = [];
    for (let i = 0; i < 20; i++) {
      const t0 = Date.now();
      const { packet } = await udpQuery(r.port, `dp${i}.example`);
      times.push(Date.now() - t0);
      assert.equal(firstData(packet), '192.0.2.2');
    }
    assert.ok(times[0]! >= 140, `first lookup paid the per-try timeout (${times[0]} ms)`);
    const slowOnes = times.filter((t) => t >= 100).length;
    assert.equal(slowOnes, 1, `only one lookup waited: ${times.join(',')}`);
    assert.equal(r.raced.upstreams[0]!.health.up, false);
    // The primary comes back: its probe finds it and traffic returns to it.
    p.opts.behaviour = 'answer';
    await sleep(1500);
    assert.equal(r.raced.upstreams[0]!.health.up, true);
    assert.equal(firstData((await udpQuery(r.port, 'back.example')).packet), '192.0.2.1');
  } finally {
    await r.close();
    await p.close();
    await s.close();
  }
});

test('ordered: a slow primary still wins if it answers before the fallback', async () => {
  const p = await Stub.start({ address: '192.0.2.1', delayMs: 120 });
  const s = await Stub.start({ address: '192.0.2.2', delayMs: 300 });
  const r = await startRaced([p.label, s.label], { strategy: 'ordered', tryTimeoutMs: 100 });
  try {
    const { packet } = await udpQuery(r.port, 'slowp.example');
    assert.equal(firstData(packet), '192.0.2.1');
    assert.equal(s.count(), 1, 'the fallback was asked after the per-try timeout');
  } finally {
    await r.close();
    await p.close();
    await s.close();
  }
});

test('all-servers: an upstream that keeps timing out is marked down and no longer asked', async () => {
  const dead = await Stub.start({ behaviour: 'drop' });
  const live = await Stub.start();
  const r = await startRaced([dead.label, live.label], { timeoutMs: 200 });
  try {
    for (let i = 0; i < 4; i++) await udpQuery(r.port, `md${i}.example`);
    await sleep(250); // the losing legs reach the deadline
    for (let i = 4; i < 8; i++) await udpQuery(r.port, `md${i}.example`);
    assert.equal(r.raced.upstreams[0]!.health.up, false);
    const sentToDead = dead.received.filter((q) => q.name.startsWith('md')).length;
    assert.ok(sentToDead < 8, `dead upstream got ${sentToDead} of 8`);
  } finally {
    await r.close();
    await dead.close();
    await live.close();
  }
});
