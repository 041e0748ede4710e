// The race rule (src/race.ts, src/wire/match.ts) on a virtual clock: no
// sockets, no real waiting. Real legs and races; replies are handed to the
// leg as the UDP pool's socket would (test/helpers/virtual.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dnsPacket from 'dns-packet';
import { allStrategy } from '../src/strategy/all.js';
import { orderedStrategy } from '../src/strategy/ordered.js';
import { EDE } from '../src/wire/ede.js';
import { NEGATIVE_GRACE_CAP_MS } from '../src/race.js';
import { AddressRules } from '../src/wire/filter.js';
import { VirtualClock, upstreams, startRace, replyTo, measured, query, nodata, nxdomain, NXDOMAIN, SERVFAIL, type Outcome } from './helpers/virtual.js';

const won = (o: Outcome[]): string => {
  assert.equal(o.length, 1, `one outcome, got ${JSON.stringify(o.map((x) => ('won' in x ? x.won : x.lost)))}`);
  const x = o[0]!;
  assert.ok('won' in x, `won, got ${JSON.stringify(x)}`);
  return x.won;
};
const A = '127.0.0.1:5301';
const B = '127.0.0.1:5302';
const C = '127.0.0.1:5303';

test('the first valid answer wins at once; a losing leg is kept and its latency and RCODE recorded', (t) => {
  const clock = new VirtualClock(t);
  const { pool, ups } = upstreams(3);
  const r = startRace(clock, ups, allStrategy, { timeoutMs: 1000 });
  assert.deepEqual(pool.order(), [A, B, C], 'all asked at once');
  assert.ok(pool.sent.every((s) => s.at === 1000));
  clock.advance(5);
  pool.one(B).leg.onDatagram(replyTo(pool.one(B)));
  assert.equal(won(r.outcomes), B);
  assert.equal(r.outcomes[0]!.at, 1005, 'answered at the reply, not later');
  assert.equal(pool.one(A).leg.open && pool.one(C).leg.open, true, 'the losers stay open');
  clock.advance(25);
  pool.one(A).leg.onDatagram(replyTo(pool.one(A), { rcode: SERVFAIL }));
  clock.advance(10);
  pool.one(C).leg.onDatagram(replyTo(pool.one(C)));
  assert.equal(r.outcomes.length, 1, 'later replies change nothing');
  const [a, b, c] = ups.map((u) => u.stats);
  assert.equal(a!.rcodes[SERVFAIL], 1, "the loser's RCODE");
  assert.equal(a!.errors.servfail, 1);
  assert.equal(a!.latency.count, 1);
  assert.equal(Math.round(a!.latency.sum * 1000), 30, "the loser's latency, from its own start");
  assert.equal(Math.round(c!.latency.sum * 1000), 40);
  assert.equal(b!.wins, 1);
  assert.deepEqual([a!.losses, b!.losses, c!.losses], [1, 0, 1]);
  assert.equal(r.stats.wasted, 2);
  assert.equal(r.stats.margin.count, 1);
  assert.equal(Math.round(r.stats.margin.sum * 1000), 25, 'margin: winner to the next valid reply (the SERVFAIL)');
  assert.ok(pool.sent.every((s) => s.released), 'every leg handed its socket back');
  assert.ok(Number.isNaN(r.race.dlAt), 'off the deadline list once every leg ended');
  assert.equal(r.stats.fanout[2], 1, 'fan-out 3 counted once');
});

const invalid: [string, (s: Parameters<typeof replyTo>[0]) => Buffer, 'mismatch' | 'malformed'][] = [
  ['wrong ID', (s) => replyTo(s, { id: s.packet.readUInt16BE(0) ^ 1 }), 'mismatch'],
  ['QR=0', (s) => replyTo(s, { qr: false }), 'mismatch'],
  ['opcode not QUERY', (s) => {
    const b = replyTo(s);
    b[2] = b[2]! | 0x10; // opcode 2 (STATUS)
    return b;
  }, 'mismatch'],
  ['another name', (s) => replyTo(s, { name: 'www.example.org' }), 'mismatch'],
  ['another type', (s) => replyTo(s, { type: 'AAAA', answers: [] }), 'mismatch'],
  ['another class', (s) => {
    const b = replyTo(s);
    b.writeUInt16BE(3, s.packet.length - 2); // CH
    return b;
  }, 'mismatch'],
  ['shorter than a header', (s) => replyTo(s).subarray(0, 11), 'mismatch'],
  ['cut inside a record', (s) => replyTo(s).subarray(0, s.packet.length + 6), 'malformed'],
  ['trailing bytes', (s) => Buffer.concat([replyTo(s), Buffer.from([0])]), 'malformed'],
  ['counts larger than the records', (s) => {
    const b = replyTo(s);
    b.writeUInt16BE(2, 6);
    return b;
  }, 'malformed'],
  ['garbage after a valid header', (s) => Buffer.concat([replyTo(s).subarray(0, 12), Buffer.from('\xff\xfe\xfd garbage', 'latin1')]), 'malformed'],
];

for (const [what, make, counted] of invalid) {
  test(`an invalid reply never wins (${what}): counted as ${counted}, the leg waits and a later valid reply wins`, (t) => {
    const clock = new VirtualClock(t);
    const { pool, ups } = upstreams(2);
    const r = startRace(clock, ups, allStrategy, { timeoutMs: 1000 });
    const a = pool.one(A);
    clock.advance(1);
    a.leg.onDatagram(make(a));
    assert.equal(r.outcomes.length, 0, 'nothing decided');
    assert.equal(a.leg.open, true);
    const errs = ups[0]!.stats.errors;
    assert.equal(errs[counted], 1);
    assert.equal(errs.mismatch + errs.malformed, 1);
    clock.advance(1);
    a.leg.onDatagram(replyTo(a));
    assert.equal(won(r.outcomes), A, 'the same leg still wins with a valid reply');
  });
}

test('the question name matches case-insensitively (0x20), type and class byte for byte', (t) => {
  const clock = new VirtualClock(t);
  const { pool, ups } = upstreams(1);
  const r = startRace(clock, ups, allStrategy, { q: query('wWw.ExAmple') });
  const s = pool.one(A);
  s.leg.onDatagram(replyTo(s, { name: 'WWW.example' }));
  assert.equal(won(r.outcomes), A);
});

for (const [name, rcode] of [['SERVFAIL', 2], ['REFUSED', 5], ['NOTIMP', 4], ['FORMERR', 1]] as const) {
  test(`${name} from one leg loses while another leg is open; the other's answer wins`, (t) => {
    const clock = new VirtualClock(t);
    const { pool, ups } = upstreams(2);
    const r = startRace(clock, ups, allStrategy, { timeoutMs: 1000 });
    pool.one(A).leg.onDatagram(replyTo(pool.one(A), { rcode }));
    assert.equal(r.outcomes.length, 0);
    clock.advance(300);
    assert.equal(r.outcomes.length, 0, 'still waiting for the open leg');
    pool.one(B).leg.onDatagram(replyTo(pool.one(B)));
    assert.equal(won(r.outcomes), B);
  });
}

test('every leg loses: their common RCODE at once, else SERVFAIL; no EDE unless raced knows why', (t) => {
  const clock = new VirtualClock(t);
  const { pool, ups } = upstreams(2);
  const same = startRace(clock, ups, allStrategy, { timeoutMs: 1000 });
  for (const s of pool.sent) s.leg.onDatagram(replyTo(s, { rcode: 5 }));
  assert.deepEqual(same.outcomes, [{ lost: 5, reason: 'lost', ede: -1, at: 1000 }]);
  pool.sent.length = 0;
  const mixed = startRace(clock, ups, allStrategy, { timeoutMs: 1000 });
  pool.sent[0]!.leg.onDatagram(replyTo(pool.sent[0]!, { rcode: 5 }));
  clock.advance(3);
  pool.sent[1]!.leg.onDatagram(replyTo(pool.sent[1]!, { rcode: 4 }));
  assert.deepEqual(mixed.outcomes, [{ lost: SERVFAIL, reason: 'lost', ede: -1, at: 1003 }]);
  assert.equal(mixed.stats.failed, 1);
});

test('every leg cut off by the network: SERVFAIL with EDE 23 at once, not at the deadline', (t) => {
  const clock = new VirtualClock(t);
  const { pool, ups } = upstreams(2);
  const r = startRace(clock, ups, allStrategy, { timeoutMs: 1000 });
  pool.sent[0]!.leg.onSocketError();
  assert.equal(r.outcomes.length, 0);
  clock.advance(2);
  pool.sent[1]!.leg.onSocketError();
  assert.deepEqual(r.outcomes, [{ lost: SERVFAIL, reason: 'lost', ede: EDE.NETWORK_ERROR, at: 1002 }]);
  assert.equal(ups[0]!.stats.errors.network, 1);
});

test('no valid answer by the deadline: SERVFAIL with EDE 22 exactly then; open legs end as timeouts', (t) => {
  const clock = new VirtualClock(t);
  const { pool, ups } = upstreams(2);
  const r = startRace(clock, ups, allStrategy, { timeoutMs: 700 });
  pool.one(A).leg.onDatagram(replyTo(pool.one(A), { id: 1 })); // invalid: ignored
  clock.advance(699);
  assert.equal(r.outcomes.length, 0);
  clock.advance(1);
  assert.deepEqual(r.outcomes, [{ lost: SERVFAIL, reason: 'timeout', ede: EDE.NO_REACHABLE_AUTHORITY, at: 1700 }]);
  assert.equal(r.stats.timedOut, 1);
  assert.deepEqual(ups.map((u) => u.stats.errors.timeout), [1, 1]);
  assert.ok(pool.sent.every((s) => !s.leg.open && s.released));
  // A reply after the deadline is too late: still counted, never an answer.
  pool.one(B).leg.onDatagram(replyTo(pool.one(B)));
  assert.equal(r.outcomes.length, 1);
});

test('a negative answer waits for agreement: a second NXDOMAIN answers at once with the first reply', (t) => {
  const clock = new VirtualClock(t);
  const { pool, ups } = upstreams(3);
  const r = startRace(clock, ups, allStrategy, { timeoutMs: 1000, graceMs: 80 });
  clock.advance(2);
  const first = replyTo(pool.one(A), nxdomain);
  pool.one(A).leg.onDatagram(first);
  assert.equal(r.outcomes.length, 0, 'held');
  clock.advance(10);
  pool.one(C).leg.onDatagram(replyTo(pool.one(C), nxdomain));
  assert.equal(won(r.outcomes), A, 'the first negative is served');
  assert.equal(r.outcomes[0]!.at, 1012, 'at the agreeing reply, not at the grace');
  clock.advance(100);
  assert.equal(r.outcomes.length, 1, 'its grace passing later changes nothing');
});

test('NODATA agrees only with NODATA: NXDOMAIN then NODATA then NODATA serves the agreeing NODATA', (t) => {
  const clock = new VirtualClock(t);
  const { pool, ups } = upstreams(3);
  const r = startRace(clock, ups, allStrategy, { timeoutMs: 1000, graceMs: 80 });
  pool.one(A).leg.onDatagram(replyTo(pool.one(A), nxdomain));
  clock.advance(1);
  pool.one(B).leg.onDatagram(replyTo(pool.one(B), nodata));
  assert.equal(r.outcomes.length, 0, 'two kinds: no agreement yet');
  clock.advance(1);
  pool.one(C).leg.onDatagram(replyTo(pool.one(C), nodata));
  assert.equal(won(r.outcomes), C);
  const x = r.outcomes[0]!;
  assert.ok('won' in x && x.scan.rcode === 0 && x.scan.ancount === 0, 'a NODATA reply');
});

test('a lone negative answer wins when the fixed grace passes, not before', (t) => {
  const clock = new VirtualClock(t);
  const { pool, ups } = upstreams(2);
  const r = startRace(clock, ups, allStrategy, { timeoutMs: 1000, graceMs: 50 });
  clock.advance(3);
  pool.one(A).leg.onDatagram(replyTo(pool.one(A), nodata));
  clock.advance(49);
  assert.equal(r.outcomes.length, 0);
  clock.advance(1);
  assert.equal(won(r.outcomes), A);
  assert.equal(r.outcomes[0]!.at, 1053);
  assert.equal(pool.one(B).leg.open, true, 'the silent leg stays until the deadline');
});

test('a positive answer within the grace beats a held negative, which is counted as overruled; so is a negative after the win', (t) => {
  const clock = new VirtualClock(t);
  const { pool, ups } = upstreams(3);
  const r = startRace(clock, ups, allStrategy, { timeoutMs: 1000, graceMs: 100 });
  pool.one(A).leg.onDatagram(replyTo(pool.one(A), nxdomain));
  clock.advance(40);
  pool.one(B).leg.onDatagram(replyTo(pool.one(B)));
  assert.equal(won(r.outcomes), B);
  assert.deepEqual({ ...ups[0]!.stats.overruled }, { nxdomain: 1, nodata: 0 });
  pool.one(C).leg.onDatagram(replyTo(pool.one(C), nodata));
  assert.deepEqual({ ...ups[2]!.stats.overruled }, { nxdomain: 0, nodata: 1 });
  assert.equal(ups[1]!.stats.wins, 1);
});

test('grace 0: the first valid answer wins, a negative one included', (t) => {
  const clock = new VirtualClock(t);
  const { pool, ups } = upstreams(2);
  const r = startRace(clock, ups, allStrategy, { graceMs: 0 });
  pool.one(B).leg.onDatagram(replyTo(pool.one(B), nxdomain));
  assert.equal(won(r.outcomes), B);
});

test('a negative answer wins at once when no other leg is open; a held one wins when the last other leg loses', (t) => {
  const clock = new VirtualClock(t);
  const { pool, ups } = upstreams(2);
  const r1 = startRace(clock, ups, allStrategy, { graceMs: 100 });
  pool.sent[0]!.leg.onDatagram(replyTo(pool.sent[0]!, { rcode: SERVFAIL }));
  pool.sent[1]!.leg.onDatagram(replyTo(pool.sent[1]!, nxdomain));
  assert.equal(won(r1.outcomes), B, 'nobody left to agree');
  pool.sent.length = 0;
  const r2 = startRace(clock, ups, allStrategy, { graceMs: 100 });
  pool.sent[0]!.leg.onDatagram(replyTo(pool.sent[0]!, nxdomain));
  clock.advance(7);
  assert.equal(r2.outcomes.length, 0);
  pool.sent[1]!.leg.onSocketError();
  assert.equal(won(r2.outcomes), A);
  assert.equal(r2.outcomes[0]!.at, 1007, 'at the loss, not at the grace');
});

test('a held negative answer is served at the deadline if that comes before the grace ends', (t) => {
  const clock = new VirtualClock(t);
  const { pool, ups } = upstreams(2);
  const r = startRace(clock, ups, allStrategy, { timeoutMs: 30, graceMs: 100 });
  clock.advance(10);
  pool.one(A).leg.onDatagram(replyTo(pool.one(A), nxdomain));
  clock.advance(19);
  assert.equal(r.outcomes.length, 0);
  clock.advance(1);
  assert.equal(won(r.outcomes), A);
  assert.equal(r.outcomes[0]!.at, 1030);
  assert.equal(ups[1]!.stats.errors.timeout, 1);
});

test('derived grace: until the open upstream should have answered (leg start + 1.5 x its p95 + 2 ms)', (t) => {
  const clock = new VirtualClock(t);
  const { pool, ups } = upstreams(2);
  measured(ups[1]!, 0.02); // p95 20 ms: wait until 1.5 * 20 + 2 = 32 ms after B's leg went out
  const r = startRace(clock, ups, allStrategy, { timeoutMs: 1000 });
  clock.advance(5);
  pool.one(A).leg.onDatagram(replyTo(pool.one(A), nxdomain));
  clock.advance(26);
  assert.equal(r.outcomes.length, 0, 'at 31 ms still waiting');
  clock.advance(1);
  assert.equal(won(r.outcomes), A);
  assert.equal(r.outcomes[0]!.at, 1032);
});

test('derived grace: capped at 100 ms for a slow upstream, the cap for a new silent one, none for one down or long silent', (t) => {
  const clock = new VirtualClock(t);
  const { pool, ups } = upstreams(2);
  const run = (whileOpen = (): void => {}): number => {
    pool.sent.length = 0;
    const r = startRace(clock, ups, allStrategy, { timeoutMs: 5000 });
    const t0 = clock.now;
    whileOpen();
    pool.one(A).leg.onDatagram(replyTo(pool.one(A), nxdomain));
    while (r.outcomes.length === 0 && clock.now - t0 < 4000) clock.advance(1);
    pool.one(B).leg.abandon(false);
    assert.equal(won(r.outcomes), A);
    return r.outcomes[0]!.at - t0;
  };
  // B has never answered, first asked just now: the cap.
  assert.equal(run(), NEGATIVE_GRACE_CAP_MS);
  // First asked over 100 ms ago and still silent: not waited for (the 1 ms floor).
  clock.advance(1);
  assert.equal(run(), 1);
  // Slow: p95 900 ms would mean 1352 ms; capped.
  measured(ups[1]!, 0.9, 128);
  assert.equal(run(), NEGATIVE_GRACE_CAP_MS);
  // Marked down while its leg is open: not waited for.
  assert.equal(run(() => ups[1]!.health.markDown()), 1);
});

test('--ignore-address: such a reply counts as no reply; a later good one wins; all ignored: SERVFAIL at once', (t) => {
  const clock = new VirtualClock(t);
  const { pool, ups } = upstreams(2);
  const addresses = AddressRules.from({ ignore: [{ family: 4, bytes: new Uint8Array([0, 0, 0, 0]), bits: 32 }], bogus: [], stopRebind: false, rebindLocalhostOk: false, rebindDomainOk: [] });
  const blocked = { answers: [{ name: 'www.example', type: 'A', ttl: 60, data: '0.0.0.0' } as dnsPacket.Answer] };
  const r = startRace(clock, ups, allStrategy, { rules: { addresses } });
  pool.one(A).leg.onDatagram(replyTo(pool.one(A), blocked));
  assert.equal(r.outcomes.length, 0);
  assert.equal(ups[0]!.stats.errors.ignored, 1);
  pool.one(B).leg.onDatagram(replyTo(pool.one(B)));
  assert.equal(won(r.outcomes), B);
  pool.sent.length = 0;
  const all = startRace(clock, ups, allStrategy, { rules: { addresses } });
  for (const s of pool.sent) s.leg.onDatagram(replyTo(s, blocked));
  assert.deepEqual(all.outcomes, [{ lost: SERVFAIL, reason: 'lost', ede: -1, at: clock.now }]);
});

test('ordered: a negative answer from the one upstream asked wins at once (its word is final)', (t) => {
  const clock = new VirtualClock(t);
  const { pool, ups } = upstreams(2);
  const r = startRace(clock, ups, orderedStrategy(300), { graceMs: 100 });
  assert.deepEqual(pool.order(), [A]);
  pool.one(A).leg.onDatagram(replyTo(pool.one(A), { rcode: NXDOMAIN }));
  assert.equal(won(r.outcomes), A);
  assert.deepEqual(pool.order(), [A], 'nobody else asked');
});
