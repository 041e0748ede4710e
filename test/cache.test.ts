// The answer cache, through raced over real sockets, with stand-in upstreams
// that count what reaches them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dnsPacket from 'dns-packet';
import { Stub } from './helpers/stub.js';
import { startRaced, udpQuery, tcpExchange, makeQuery, decode, firstData, sleep } from './helpers/client.js';
import type { Options } from '../src/config/options.js';
import type { AnswerCache } from '../src/cache/cache.js';

async function withRaced(stubOpts: ConstructorParameters<typeof Stub>[0], over: Partial<Options>, fn: (port: number, up: Stub, r: Awaited<ReturnType<typeof startRaced>>) => Promise<void>): Promise<void> {
  const up = await Stub.start(stubOpts);
  const r = await startRaced([up.label], { cacheSize: 1000, ...over });
  try {
    await fn(r.port, up, r);
  } finally {
    await r.close();
    await up.close();
  }
}

const ttlOf = (p: dnsPacket.Packet, section: 'answers' | 'authorities' = 'answers'): number => (p[section]![0] as { ttl: number }).ttl;

/**
 * Moves every entry `ms` into the past: what the cache sees after `ms` of
 * waiting, without the wait. The TTL arithmetic itself is checked on an
 * injected clock in cache-unit.test.ts; these tests check it through raced.
 */
function age(cache: AnswerCache, ms: number): void {
  for (const e of cache.snapshot().entries) {
    e.storedAt -= ms;
    e.expiresAt -= ms;
    e.staleUntil -= ms;
    e.prefetchAt -= ms;
  }
}

test('a hit does not reach the upstream, and carries the client ID and case', async () => {
  await withRaced({ address: '192.0.2.5' }, {}, async (port, up, r) => {
    await udpQuery(port, 'hit.example');
    const { packet } = await udpQuery(port, 'HiT.ExAmple', { id: 4321 });
    assert.equal(up.count(), 1);
    assert.equal(packet.id, 4321);
    assert.equal(packet.questions![0]!.name, 'HiT.ExAmple');
    assert.equal(firstData(packet), '192.0.2.5');
    assert.equal(r.raced.cache!.stats.hits, 1);
    assert.equal(r.raced.cache!.stats.misses, 1);
  });
});

test('TTL counts down: ask, age the entry 2 s, ask again', async () => {
  await withRaced({ ttl: 100 }, {}, async (port, up, r) => {
    const first = await udpQuery(port, 'ttl.example');
    assert.equal(ttlOf(first.packet), 100);
    age(r.raced.cache!, 2000);
    const again = await udpQuery(port, 'ttl.example');
    assert.equal(up.count(), 1);
    assert.equal(ttlOf(again.packet), 98);
  });
});

test('entries expire with their smallest TTL', async () => {
  await withRaced({ ttl: 1 }, {}, async (port, up, r) => {
    await udpQuery(port, 'short.example');
    age(r.raced.cache!, 900);
    await udpQuery(port, 'short.example');
    assert.equal(up.count(), 1, 'fresh 0.9 s in');
    age(r.raced.cache!, 100);
    await udpQuery(port, 'short.example');
    assert.equal(up.count(), 2);
  });
});

test('--min-cache-ttl and --max-cache-ttl clamp what is stored and served', async () => {
  await withRaced({ ttl: 1 }, { minCacheTtl: 60 }, async (port, up, r) => {
    await udpQuery(port, 'min.example');
    age(r.raced.cache!, 1100);
    const { packet } = await udpQuery(port, 'min.example');
    assert.equal(up.count(), 1);
    assert.equal(ttlOf(packet), 59);
  });
  await withRaced({ ttl: 5000 }, { maxCacheTtl: 30 }, async (port) => {
    const { packet } = await udpQuery(port, 'max.example');
    await udpQuery(port, 'max.example');
    assert.ok(ttlOf(packet) <= 30);
  });
});

test('NXDOMAIN and NODATA are cached for min(SOA TTL, MINIMUM), not without an SOA', async () => {
  await withRaced({}, {}, async (port, up) => {
    for (const name of ['nx.example', 'nodata.example']) {
      await udpQuery(port, name);
      const { packet } = await udpQuery(port, name);
      assert.ok(ttlOf(packet, 'authorities') <= 30, 'SOA TTL lowered to the SOA MINIMUM (30)');
    }
    assert.equal(up.count(), 2);
    for (const name of ['nx-nosoa.example', 'nodata-nosoa.example']) {
      await udpQuery(port, name);
      await udpQuery(port, name);
    }
    assert.equal(up.count(), 6, 'negative answers without an SOA are not cached');
  });
});

test('--neg-ttl caches negative answers without an SOA; --no-negcache caches none', async () => {
  await withRaced({}, { negTtl: 60 }, async (port, up) => {
    await udpQuery(port, 'nx-nosoa.example');
    await udpQuery(port, 'nx-nosoa.example');
    assert.equal(up.count(), 1);
  });
  await withRaced({}, { negCache: false }, async (port, up) => {
    await udpQuery(port, 'nx.example');
    await udpQuery(port, 'nx.example');
    await udpQuery(port, 'nodata.example');
    await udpQuery(port, 'nodata.example');
    assert.equal(up.count(), 4);
    // Positive answers are still cached.
    await udpQuery(port, 'pos.example');
    await udpQuery(port, 'pos.example');
    assert.equal(up.count(), 5);
  });
});

test('SERVFAIL is not cached', async () => {
  await withRaced({ behaviour: 'servfail' }, {}, async (port, up) => {
    await udpQuery(port, 'sf.example');
    await udpQuery(port, 'sf.example');
    assert.equal(up.count(), 2);
  });
});

test('--cache-size 0: no cache at all', async () => {
  await withRaced({}, { cacheSize: 0 }, async (port, up, r) => {
    await udpQuery(port, 'nocache.example');
    await udpQuery(port, 'nocache.example');
    assert.equal(up.count(), 2);
    assert.equal(r.raced.cache, null);
  });
});

test('eviction at the size limit (least recently used goes first)', async () => {
  await withRaced({}, { cacheSize: 2 }, async (port, up, r) => {
    await udpQuery(port, 'e1.example');
    await udpQuery(port, 'e2.example');
    await udpQuery(port, 'e1.example'); // e1 now most recent
    await udpQuery(port, 'e3.example'); // evicts e2
    assert.equal(up.count(), 3);
    await udpQuery(port, 'e1.example');
    assert.equal(up.count(), 3, 'e1 still cached');
    await udpQuery(port, 'e2.example');
    assert.equal(up.count(), 4, 'e2 was evicted');
    assert.ok(r.raced.cache!.stats.evictions >= 1);
    assert.equal(r.raced.cache!.size, 2);
  });
});

test('a big cached answer to a 512-byte client has TC=1 and comes whole over TCP', async () => {
  await withRaced({ bulk: 60 }, {}, async (port, up) => {
    const warm = await udpQuery(port, 'bigc.example', { edns: 4096 });
    assert.ok(warm.raw.length <= 1232 && warm.raw.readUInt16BE(2) & 0x0200, 'over 1232 bytes: TC even with EDNS 4096');
    const small = await udpQuery(port, 'bigc.example');
    assert.ok(small.raw.readUInt16BE(2) & 0x0200);
    const [whole] = await tcpExchange(port, [makeQuery('bigc.example')], 1);
    assert.equal(decode(whole!).answers!.length, 61);
    assert.equal(up.count(), 1, 'all from the cache');
  });
});

test('DO and CD queries do not share entries with plain ones', async () => {
  await withRaced({}, {}, async (port, up) => {
    await udpQuery(port, 'flags.example');
    await udpQuery(port, 'flags.example', { edns: true, dnssecOk: true });
    await udpQuery(port, 'flags.example', { cd: true });
    assert.equal(up.count(), 3);
    await udpQuery(port, 'flags.example', { edns: true, dnssecOk: true });
    await udpQuery(port, 'flags.example', { cd: true });
    assert.equal(up.count(), 3);
  });
});

test('a client with EDNS and one without share an entry, each gets the right OPT', async () => {
  await withRaced({}, {}, async (port, up) => {
    const a = await udpQuery(port, 'optmix.example');
    const b = await udpQuery(port, 'optmix.example', { edns: true });
    assert.equal(up.count(), 1);
    assert.equal(a.packet.additionals!.length, 0);
    assert.equal(b.packet.additionals!.filter((x) => x.type === 'OPT').length, 1);
  });
});

test('--serve-stale: stale answer (TTL 30) when every upstream is dead; not without the flag', async () => {
  await withRaced({ ttl: 1, address: '192.0.2.44' }, { serveStale: 3600, timeoutMs: 2500 }, async (port, up, r) => {
    await udpQuery(port, 'stale.example');
    up.opts.behaviour = 'drop';
    age(r.raced.cache!, 1100);
    const t0 = Date.now();
    const { packet } = await udpQuery(port, 'stale.example');
    assert.equal(firstData(packet), '192.0.2.44');
    assert.equal(ttlOf(packet), 30);
    assert.ok(Date.now() - t0 < 2300, 'answered at the stale deadline (1.8 s), not the query deadline');
  });
  await withRaced({ ttl: 1 }, { timeoutMs: 500 }, async (port, up, r) => {
    await udpQuery(port, 'nostale.example');
    up.opts.behaviour = 'drop';
    age(r.raced.cache!, 1100);
    const { packet } = await udpQuery(port, 'nostale.example');
    assert.equal(packet.rcode, 'SERVFAIL');
  });
  await withRaced({ ttl: 1, address: '192.0.2.45' }, { serveStale: 3600 }, async (port, up, r) => {
    await udpQuery(port, 'stale-sf.example');
    up.opts.behaviour = 'servfail';
    age(r.raced.cache!, 1100);
    const { packet } = await udpQuery(port, 'stale-sf.example');
    assert.equal(firstData(packet), '192.0.2.45', 'upstreams failing fast: stale at once');
  });
});

test('--prefetch refreshes an entry that is asked for shortly before it expires', async () => {
  await withRaced({ ttl: 10 }, { prefetch: true }, async (port, up, r) => {
    await udpQuery(port, 'pf.example');
    age(r.raced.cache!, 8900);
    await udpQuery(port, 'pf.example');
    assert.equal(r.raced.cache!.stats.prefetches, 0, 'not before the last tenth of its life');
    age(r.raced.cache!, 200); // 9.1 s: inside the last tenth
    const hit = await udpQuery(port, 'pf.example');
    assert.equal(ttlOf(hit.packet), 1, 'answered from the cache at once');
    for (let i = 0; i < 100 && up.count() < 2; i++) await sleep(10);
    assert.equal(up.count(), 2, 'a background refresh went upstream');
    assert.equal(r.raced.cache!.stats.prefetches, 1);
    age(r.raced.cache!, 1000); // the original would have expired by now
    const { packet } = await udpQuery(port, 'pf.example');
    assert.equal(up.count(), 2, 'served from the refreshed entry');
    assert.equal(ttlOf(packet), 9);
  });
});

test('identical misses in flight share one upstream query', async () => {
  await withRaced({ delayMs: 100 }, {}, async (port, up) => {
    await Promise.all([1, 2, 3, 4].map(() => udpQuery(port, 'co.example')));
    assert.equal(up.count(), 1);
  });
});

test('--cache-max-bytes: big replies (over TCP) are bounded by bytes, least recently used go first; raced_cache_bytes reports it', async () => {
  // ~2,000 A records: a 32 KiB reply that comes over TCP after a truncated UDP one.
  const max = 100 * 1024;
  await withRaced({ bulk: 2000 }, { cacheMaxBytes: max }, async (port, up, r) => {
    const cache = r.raced.cache!;
    let size = 0;
    for (let i = 0; i < 8; i++) {
      const [reply] = await tcpExchange(port, [makeQuery(`big${i}.example`)], 1);
      size = reply!.length;
      assert.ok(size > 30_000, `a big reply (${size} bytes)`);
      assert.ok(cache.bytes <= max, `${cache.bytes} cached bytes, bound ${max}`);
    }
    // The stored copy is the upstream's reply (with raced's OPT): a few bytes more than the client's.
    const per = cache.bytes / cache.size;
    assert.ok(per >= size && per < size + 64, `${per} bytes per entry`);
    assert.equal(cache.size, Math.floor(max / per), 'as many entries as the bytes allow');
    assert.ok(cache.stats.evictions >= 8 - cache.size);
    // The newest is a hit; the oldest was evicted and goes upstream again.
    up.reset();
    await tcpExchange(port, [makeQuery('big7.example')], 1);
    assert.equal(up.count(), 0);
    await tcpExchange(port, [makeQuery('big0.example')], 1);
    assert.ok(up.count() > 0);
    const { buildRegistry } = await import('../src/metrics/registry.js');
    const text = await buildRegistry(r.raced, 'test').metrics();
    assert.match(text, new RegExp(`raced_cache_bytes ${cache.bytes}\\b`));
  });
  // Small entries are bounded by count as before; a reply bigger than the whole bound is not cached.
  await withRaced({ bulk: 2000 }, { cacheMaxBytes: 16 * 1024 }, async (port, up, r) => {
    await tcpExchange(port, [makeQuery('toobig.example')], 1);
    assert.equal(r.raced.cache!.size, 0);
    assert.equal(r.raced.cache!.bytes, 0);
  });
});
