// The cache on its own, on an injected clock: lifetimes, clamps, negative
// caching, serve-stale and the prefetch window without waiting real seconds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dnsPacket from 'dns-packet';
import { AnswerCache, type CacheOptions } from '../src/cache/cache.js';
import { scanMessage } from '../src/wire/message.js';

const base: CacheOptions = { size: 100, minTtl: 0, maxTtl: 86400, negCache: true, negTtl: -1, serveStale: 0, prefetch: false };
const cache = (o: Partial<CacheOptions> = {}): AnswerCache => new AnswerCache({ ...base, ...o });

function reply(o: { ttl?: number; rcode?: number; soa?: number; answers?: number } = {}): Buffer {
  const answers = Array.from({ length: o.answers ?? 1 }, (_, i) => ({ name: 'x.example', type: 'A', ttl: (o.ttl ?? 300) + i, data: `192.0.2.${i + 1}` }) as dnsPacket.Answer);
  return dnsPacket.encode({
    type: 'response',
    id: 1,
    flags: o.rcode ?? 0,
    questions: [{ name: 'x.example', type: 'A', class: 'IN' }],
    answers: o.rcode === 3 ? [] : answers,
    authorities: o.soa !== undefined ? [{ name: 'example', type: 'SOA', ttl: o.soa, data: { mname: 'ns', rname: 'h', serial: 1, refresh: 1, retry: 1, expire: 1, minimum: o.soa } }] : [],
  } as dnsPacket.Packet);
}

function put(c: AnswerCache, r: Buffer, now: number, key = 'k'): ReturnType<AnswerCache['store']> {
  return c.store(key, r, scanMessage(r, true)!, now);
}

test('an entry lives its smallest TTL on the clock it was given, and reports its age', () => {
  const c = cache();
  put(c, reply({ ttl: 60, answers: 3 }), 1000); // TTLs 60, 61, 62
  const hit = c.lookup('k', 1000 + 59_999);
  assert.equal(hit?.state, 'fresh');
  assert.equal(hit?.state === 'fresh' && hit.age, 59);
  assert.equal(c.lookup('k', 1000 + 60_000), null);
  assert.equal(c.stats.hits, 1);
  assert.equal(c.stats.misses, 1);
});

test('--min-cache-ttl and --max-cache-ttl clamp both the life and the stored TTL fields', () => {
  const lo = cache({ minTtl: 30 });
  const e = put(lo, reply({ ttl: 5 }), 0)!;
  assert.equal(e.expiresAt, 30_000);
  assert.equal(e.reply.readUInt32BE(e.start + e.ttls![0]!), 30);
  const hi = cache({ maxTtl: 10 });
  const f = put(hi, reply({ ttl: 5000 }), 0)!;
  assert.equal(f.expiresAt, 10_000);
  assert.equal(f.reply.readUInt32BE(f.start + f.ttls![0]!), 10);
});

test('negative answers: min(SOA TTL, MINIMUM) (RFC 2308), not without an SOA unless --neg-ttl, never with --no-negcache; SERVFAIL never', () => {
  assert.equal(put(cache(), reply({ rcode: 3, soa: 120 }), 0)!.expiresAt, 120_000);
  assert.equal(put(cache(), reply({ rcode: 3 }), 0), null);
  assert.equal(put(cache({ negTtl: 15 }), reply({ rcode: 3 }), 0)!.expiresAt, 15_000);
  assert.equal(put(cache({ negCache: false }), reply({ rcode: 3, soa: 120 }), 0), null);
  assert.equal(put(cache(), reply({ rcode: 2 }), 0), null);
});

test('serve-stale keeps an expired entry as stale for its window only', () => {
  const c = cache({ serveStale: 3600 });
  put(c, reply({ ttl: 10 }), 0);
  assert.equal(c.lookup('k', 10_000)?.state, 'stale');
  assert.equal(c.lookup('k', 10_000 + 3_599_999)?.state, 'stale');
  assert.equal(c.lookup('k', 10_000 + 3_600_000), null);
});

test('prefetch is wanted in the last tenth of the life, once', () => {
  const c = cache({ prefetch: true });
  const e = put(c, reply({ ttl: 100 }), 0)!;
  assert.equal(c.wantsPrefetch(e, 89_999), false);
  assert.equal(c.wantsPrefetch(e, 90_000), true);
  e.refreshing = true;
  assert.equal(c.wantsPrefetch(e, 95_000), false);
  assert.equal(cache().wantsPrefetch(put(cache(), reply({ ttl: 100 }), 0)!, 95_000), false, 'not without --prefetch');
});

test('bounded by entries (LRU) and by bytes', () => {
  const c = cache({ size: 2 });
  put(c, reply(), 0, 'a');
  put(c, reply(), 0, 'b');
  c.lookup('a', 1);
  put(c, reply(), 0, 'c');
  assert.equal(c.lookup('b', 1), null, 'the least recently used went');
  assert.equal(c.lookup('a', 1)?.state, 'fresh');
  const r = reply({ answers: 20 });
  const small = cache({ maxBytes: r.length * 2 });
  put(small, r, 0, 'a');
  put(small, r, 0, 'b');
  put(small, r, 0, 'c');
  assert.equal(small.size, 2);
  assert.ok(small.bytes <= r.length * 2);
  assert.equal(put(cache({ maxBytes: r.length - 1 }), r, 0), null, 'a reply over the bound is not cached');
});

/** A negative reply whose SOA record TTL and MINIMUM differ (RFC 2308 §5 takes the smaller). */
function negative(o: { rcode: 0 | 3; soaTtl: number; minimum: number }): Buffer {
  return dnsPacket.encode({
    type: 'response',
    id: 1,
    flags: o.rcode,
    questions: [{ name: 'x.example', type: 'AAAA', class: 'IN' }],
    answers: [],
    authorities: [{ name: 'example', type: 'SOA', ttl: o.soaTtl, data: { mname: 'ns', rname: 'h', serial: 1, refresh: 1, retry: 1, expire: 1, minimum: o.minimum } }],
  } as dnsPacket.Packet);
}

test('RFC 2308: a negative answer lives min(SOA TTL, MINIMUM), NXDOMAIN and NODATA alike; the stored SOA TTL says no more', () => {
  for (const rcode of [3, 0] as const) {
    const lowTtl = put(cache(), negative({ rcode, soaTtl: 40, minimum: 900 }), 0)!;
    assert.equal(lowTtl.expiresAt, 40_000, `rcode ${rcode}: the record's TTL is the smaller`);
    const lowMin = put(cache(), negative({ rcode, soaTtl: 3600, minimum: 25 }), 0)!;
    assert.equal(lowMin.expiresAt, 25_000, `rcode ${rcode}: MINIMUM is the smaller`);
    assert.equal(lowMin.reply.readUInt32BE(lowMin.start + lowMin.ttls![0]!), 25, 'the SOA TTL field lowered to the life');
  }
  // The clamps apply to negative lives too.
  assert.equal(put(cache({ maxTtl: 10 }), negative({ rcode: 3, soaTtl: 300, minimum: 300 }), 0)!.expiresAt, 10_000);
  assert.equal(put(cache({ minTtl: 60 }), negative({ rcode: 3, soaTtl: 5, minimum: 5 }), 0)!.expiresAt, 60_000);
  // A zero life is not cached at all.
  assert.equal(put(cache(), negative({ rcode: 3, soaTtl: 0, minimum: 300 }), 0), null);
  assert.equal(put(cache(), reply({ ttl: 0 }), 0), null);
});

test('a stale entry is a miss, not a hit; without serve-stale an expired entry is gone', () => {
  const c = cache({ serveStale: 60 });
  put(c, reply({ ttl: 10 }), 0);
  assert.equal(c.lookup('k', 9_999)?.state, 'fresh');
  const s = c.lookup('k', 10_000);
  assert.equal(s?.state, 'stale');
  assert.deepEqual([c.stats.hits, c.stats.misses], [1, 1]);
  const plain = cache();
  put(plain, reply({ ttl: 10 }), 0);
  assert.equal(plain.lookup('k', 10_000), null);
});

test('replacing a key keeps the byte count of one reply; deleteName drops every type of one name only', () => {
  const c = cache();
  const r = reply();
  put(c, r, 0, 'k');
  put(c, reply({ answers: 3 }), 5, 'k');
  assert.equal(c.size, 1);
  assert.equal(c.bytes, reply({ answers: 3 }).length);
  assert.equal(c.lookup('k', 300_004)?.state, 'fresh', 'the second reply, stored at 5, lives 300 s from then');
  assert.equal(c.lookup('k', 300_005), null);
  // Keys are the lower-cased wire name, then type, class and one flags byte.
  const name = Buffer.from('\x01x\x07example\x00', 'latin1').toString('latin1');
  const other = Buffer.from('\x01x\x07example\x03org\x00', 'latin1').toString('latin1'); // x.example.org
  const c2 = cache();
  put(c2, r, 0, `${name}\x00\x01\x00\x01\x00`);
  put(c2, r, 0, `${name}\x00\x1c\x00\x01\x00`);
  put(c2, r, 0, `${other}\x00\x01\x00\x01\x00`);
  assert.equal(c2.deleteName(Buffer.from(name, 'latin1')), 2);
  assert.equal(c2.size, 1);
  assert.equal(c2.bytes, r.length);
});

test('restore keeps the times it is given (cache file), on the same clock as lookups', () => {
  const c = cache({ serveStale: 30 });
  const r = reply({ ttl: 100 });
  c.restore('k', r, scanMessage(r, true)!, -50_000, 50_000);
  const hit = c.lookup('k', 0);
  assert.equal(hit?.state === 'fresh' && hit.age, 50);
  assert.equal(c.lookup('k', 50_000)?.state, 'stale');
  assert.equal(c.lookup('k', 80_000), null);
});

test('RFC 2308 §5: a CNAME chain that ends in NODATA lives the negative TTL; a chain that ends in the asked type stays positive', () => {
  const soa = { name: 'example', type: 'SOA', ttl: 3600, data: { mname: 'ns', rname: 'h', serial: 1, refresh: 1, retry: 1, expire: 1, minimum: 60 } };
  const chain = (answers: object[]): Buffer =>
    dnsPacket.encode({ type: 'response', id: 1, flags: 0, questions: [{ name: 'www.example', type: 'AAAA', class: 'IN' }], answers, authorities: [soa] } as dnsPacket.Packet);
  const cname = { name: 'www.example', type: 'CNAME', ttl: 3600, data: 'host.example' };
  const toNothing = put(cache(), chain([cname]), 0)!;
  assert.equal(toNothing.expiresAt, 60_000, 'min(SOA TTL 3600, MINIMUM 60), not the CNAME\'s 3600');
  for (const at of toNothing.ttls!) assert.ok(toNothing.reply.readUInt32BE(toNothing.start + at) <= 60, 'no stored TTL says more than the life');
  const shortCname = put(cache(), chain([{ ...cname, ttl: 5 }]), 0)!;
  assert.equal(shortCname.expiresAt, 5_000, 'a CNAME shorter than the negative TTL bounds the life: its target may change');
  const toAnswer = put(cache(), chain([cname, { name: 'host.example', type: 'AAAA', ttl: 1800, data: '2001:db8::1' }]), 0)!;
  assert.equal(toAnswer.expiresAt, 1_800_000, 'a chain that ends in an AAAA is positive: its smallest TTL');
});
