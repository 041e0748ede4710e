// The race rule, end to end over real sockets: raced in this process, stand-in
// upstreams on 127.0.0.1, queries over UDP.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import dnsPacket from 'dns-packet';
import { Stub, type Behaviour } from './helpers/stub.js';
import { startRaced, udpQuery, sleep, firstData } from './helpers/client.js';

const stubs: Stub[] = [];
async function stub(...args: Parameters<typeof Stub.start>): Promise<Stub> {
  const s = await Stub.start(...args);
  stubs.push(s);
  return s;
}
after(async () => {
  for (const s of stubs) await s.close();
});

const aRecord = (p: dnsPacket.Packet): string | undefined => firstData(p);

test('all-servers: fans out to every upstream and the fastest answer wins', async () => {
  const fast = await stub({ address: '192.0.2.10' });
  const slow = await stub({ address: '192.0.2.20', delayMs: 200 });
  const r = await startRaced([slow.label, fast.label]);
  try {
    const { packet } = await udpQuery(r.port, 'fan.example');
    assert.equal(r.raced.upstreams[0]!.stats.latency.count, 0, 'answered before the slow upstream replied');
    assert.equal(aRecord(packet), '192.0.2.10');
    assert.equal(packet.rcode, 'NOERROR');
    assert.equal(fast.count('udp'), 1);
    assert.equal(slow.count('udp'), 1);
    await sleep(300);
    const [s, f] = r.raced.upstreams;
    assert.equal(f!.stats.wins, 1);
    assert.equal(s!.stats.wins, 0);
    // The loser's reply was still received and recorded.
    assert.equal(s!.stats.rcodes[0], 1);
    assert.equal(s!.stats.losses, 1);
    assert.equal(s!.stats.inflight, 0);
  } finally {
    await r.close();
  }
});

test('a dead upstream costs the client nothing', async () => {
  const dead = await stub({ behaviour: 'drop' });
  const live = await stub({ address: '192.0.2.30', delayMs: 5 });
  const r = await startRaced([dead.label, live.label], { timeoutMs: 60_000 });
  try {
    for (let i = 0; i < 10; i++) {
      const { packet } = await udpQuery(r.port, `dead${i}.example`);
      assert.equal(aRecord(packet), '192.0.2.30');
      // With a 60 s deadline, an answer at all means nobody waited for the dead upstream.
      assert.equal(r.raced.upstreams[0]!.stats.inflight, i + 1, 'the dead leg is still open');
    }
  } finally {
    await r.close();
  }
});

for (const behaviour of ['servfail', 'refused', 'notimp', 'formerr'] as Behaviour[]) {
  test(`a fast ${behaviour.toUpperCase()} loses to a slower valid answer`, async () => {
    const bad = await stub({ behaviour });
    const good = await stub({ address: '192.0.2.40', delayMs: 60 });
    const r = await startRaced([bad.label, good.label]);
    try {
      const { packet } = await udpQuery(r.port, `lose-${behaviour}.example`);
      assert.equal(packet.rcode, 'NOERROR');
      assert.equal(aRecord(packet), '192.0.2.40');
    } finally {
      await r.close();
    }
  });
}

test('NXDOMAIN wins like NOERROR', async () => {
  const a = await stub({ delayMs: 100 });
  const b = await stub();
  const r = await startRaced([a.label, b.label]);
  try {
    const { packet } = await udpQuery(r.port, 'nx.example');
    assert.equal(packet.rcode, 'NXDOMAIN');
  } finally {
    await r.close();
  }
});

test('every upstream loses: their common RCODE at once, or SERVFAIL when they differ', async () => {
  const r1 = await stub({ behaviour: 'refused' });
  const r2 = await stub({ behaviour: 'refused', delayMs: 20 });
  const s1 = await stub({ behaviour: 'servfail' });
  // A 60 s deadline: an answer within the client's 5 s did not wait for it.
  let r = await startRaced([r1.label, r2.label], { timeoutMs: 60_000 });
  try {
    const { packet } = await udpQuery(r.port, 'allrefused.example');
    assert.equal(packet.rcode, 'REFUSED');
  } finally {
    await r.close();
  }
  r = await startRaced([r1.label, s1.label], { timeoutMs: 60_000 });
  try {
    const { packet } = await udpQuery(r.port, 'mixed.example');
    assert.equal(packet.rcode, 'SERVFAIL');
  } finally {
    await r.close();
  }
});

test('all upstreams dead: SERVFAIL at the deadline, never silence', async () => {
  const d1 = await stub({ behaviour: 'drop' });
  const d2 = await stub({ behaviour: 'drop' });
  const r = await startRaced([d1.label, d2.label], { timeoutMs: 400 });
  try {
    const t0 = Date.now();
    const { packet } = await udpQuery(r.port, 'alldead.example');
    const took = Date.now() - t0;
    assert.equal(packet.rcode, 'SERVFAIL');
    assert.ok(took >= 350, `took ${took} ms: at the deadline (its exact time: race-rule.test.ts)`);
    assert.equal(r.raced.upstreams[0]!.stats.errors.timeout, 1);
    assert.equal(r.raced.upstreams[0]!.stats.inflight, 0);
  } finally {
    await r.close();
  }
});

// Replies that must be ignored; a correct reply from the same upstream 80 ms
// later must still be accepted, and the bad one counted.
const rejects: [Behaviour, 'mismatch' | 'malformed'][] = [
  ['wrong-id', 'mismatch'],
  ['wrong-question', 'mismatch'],
  ['qr0', 'mismatch'],
  ['short', 'mismatch'],
  ['garbage', 'malformed'],
  ['trailing', 'malformed'],
  ['bad-counts', 'malformed'],
  ['other-port', 'mismatch'],
];
for (const [behaviour, kind] of rejects) {
  test(`upstream reply rejected: ${behaviour}; a later correct reply still wins`, async () => {
    const s = await stub({ behaviour, thenAnswerAfterMs: 80, address: '192.0.2.50' });
    const r = await startRaced([s.label]);
    try {
      const { packet } = await udpQuery(r.port, `reject-${behaviour}.example`);
      assert.equal(packet.rcode, 'NOERROR');
      assert.equal(aRecord(packet), '192.0.2.50');
      const st = r.raced.upstreams[0]!.stats;
      if (behaviour === 'other-port') {
        // Leg sockets are connect()ed: the kernel drops it before raced sees it.
        assert.equal(st.errors.mismatch, 0);
      } else if (behaviour === 'wrong-id') {
        // An ID no leg waits on: counted once, as stray or mismatch, never relayed.
        assert.equal(st.errors.mismatch + r.raced.pool.stray, 1);
      } else {
        assert.equal(st.errors[kind], 1, `${kind} counted`);
      }
    } finally {
      await r.close();
    }
  });
}

test('only invalid replies: SERVFAIL at the deadline, nothing relayed', async () => {
  const s = await stub({ behaviour: 'wrong-question' });
  const r = await startRaced([s.label], { timeoutMs: 300 });
  try {
    const { packet } = await udpQuery(r.port, 'onlybad.example');
    assert.equal(packet.rcode, 'SERVFAIL');
    assert.equal(packet.answers?.length ?? 0, 0);
  } finally {
    await r.close();
  }
});

test('upstream truncates over UDP: raced retries it over TCP and answers whole', async () => {
  const s = await stub({ behaviour: 'truncate', address: '192.0.2.60' });
  const r = await startRaced([s.label]);
  try {
    const { packet } = await udpQuery(r.port, 'tc.example', { edns: true });
    assert.equal(packet.flags! & dnsPacket.TRUNCATED_RESPONSE, 0);
    assert.equal(aRecord(packet), '192.0.2.60');
    assert.equal(s.count('udp'), 1);
    assert.equal(s.count('tcp'), 1);
  } finally {
    await r.close();
  }
});

test('identical queries in flight share one race; each client keeps its ID and case', async () => {
  const s = await stub({ delayMs: 100 });
  const r = await startRaced([s.label]);
  try {
    const names = ['Share.Example', 'sHARE.eXAMPLE', 'share.example'];
    const replies = await Promise.all(names.map((n, i) => udpQuery(r.port, n, { id: 1000 + i })));
    assert.equal(s.count(), 1, 'one upstream query for three clients');
    replies.forEach(({ packet }, i) => {
      assert.equal(packet.id, 1000 + i);
      assert.equal(packet.questions![0]!.name, names[i]);
    });
    assert.equal(r.raced.pipeline.stats.coalesced, 2);
  } finally {
    await r.close();
  }
});

test('each leg gets a fresh random ID; the upstream sees a lower-cased name', async () => {
  const a = await stub();
  const b = await stub();
  const r = await startRaced([a.label, b.label]);
  try {
    await udpQuery(r.port, 'IDS.example', { id: 4242 });
    const ida = a.received[0]!.packet.id;
    const idb = b.received[0]!.packet.id;
    assert.notEqual(ida, 4242);
    assert.notEqual(idb, 4242);
    assert.equal(a.received[0]!.name, 'ids.example');
  } finally {
    await r.close();
  }
});

test('an upstream dying mid-run: the race goes on with the others', async () => {
  const dying = await stub({ address: '192.0.2.70' });
  const steady = await stub({ address: '192.0.2.71', delayMs: 10 });
  // A 60 s deadline: every answer within the client's 5 s came from the race, not its end.
  const r = await startRaced([dying.label, steady.label], { timeoutMs: 60_000 });
  try {
    for (let i = 0; i < 20; i++) {
      if (i === 10) await dying.close();
      const { packet } = await udpQuery(r.port, `mid${i}.example`);
      assert.equal(packet.rcode, 'NOERROR');
      if (i >= 10) assert.equal(aRecord(packet), '192.0.2.71', `lookup ${i}: the steady one`);
    }
    stubs.splice(stubs.indexOf(dying), 1);
  } finally {
    await r.close();
  }
});

test('an upstream port with nothing listening (ICMP unreachable): fails fast, never crashes', async () => {
  const gone = await Stub.start();
  const goneLabel = gone.label;
  await gone.close();
  const live = await stub({ address: '192.0.2.80', delayMs: 20 });
  const r = await startRaced([goneLabel, live.label], { timeoutMs: 2000 });
  try {
    for (let i = 0; i < 10; i++) assert.equal(aRecord((await udpQuery(r.port, `icmp${i}.example`)).packet), '192.0.2.80');
    assert.ok(r.raced.upstreams[0]!.stats.errors.network >= 1, 'counted as a network error');
  } finally {
    await r.close();
  }
  const only = await startRaced([goneLabel], { timeoutMs: 60_000 });
  try {
    // A 60 s deadline: SERVFAIL within the client's 5 s came from the ICMP error, not the deadline.
    const { packet } = await udpQuery(only.port, 'icmp-only.example');
    assert.equal(packet.rcode, 'SERVFAIL');
    assert.ok(only.raced.upstreams[0]!.stats.errors.network >= 1, 'a network error');
  } finally {
    await only.close();
  }
});

test('upstream legs leave from many source ports: at most 64 legs per port (RFC 5452)', async () => {
  const up = await Stub.start();
  const r = await startRaced([up.label], { cacheSize: 0 });
  try {
    for (let batch = 0; batch < 10; batch++) {
      await Promise.all(Array.from({ length: 100 }, (_, i) => udpQuery(r.port, `sp${batch}-${i}.example`)));
    }
    const perPort = new Map<number, number>();
    for (const q of up.received) perPort.set(q.port, (perPort.get(q.port) ?? 0) + 1);
    assert.equal(up.count('udp'), 1000);
    assert.ok(perPort.size >= Math.ceil(1000 / 64), `${perPort.size} source ports for 1,000 legs`);
    assert.ok(Math.max(...perPort.values()) <= 64, `at most 64 legs on one port, saw ${Math.max(...perPort.values())}`);
  } finally {
    await r.close();
    await up.close();
  }
});
