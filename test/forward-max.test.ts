// --dns-forward-max counts only queries waiting on upstreams (issue 14.5):
// with the cap full behind a slow stand-in, cached, stale, hosts and
// localhost answers still come; only a query that would wait gets REFUSED.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Stub } from './helpers/stub.js';
import { startRaced, udpQuery, firstData, sleep } from './helpers/client.js';

test('--dns-forward-max full: cache hits, stale entries, hosts names and localhost still answer; forwarded names get REFUSED', async () => {
  // Names starting with "slow" take 1.5 s; the rest answer at once with TTL 1.
  const up = await Stub.start({ address: '192.0.2.50', ttl: 1, delayFor: (name) => (name.startsWith('slow') ? 1500 : 0) });
  const hosts = join(mkdtempSync(join(tmpdir(), 'raced-cap-')), 'hosts');
  writeFileSync(hosts, '192.0.2.99 printer.lan\n');
  const r = await startRaced([up.label], { forwardMax: 1, cacheSize: 100, serveStale: 3600, hostsFiles: [hosts], timeoutMs: 3000 });
  try {
    assert.equal(firstData((await udpQuery(r.port, 'old.example')).packet), '192.0.2.50');
    await sleep(1200); // old.example is now stale
    assert.equal(firstData((await udpQuery(r.port, 'fresh.example')).packet), '192.0.2.50');
    const slow = udpQuery(r.port, 'slow.example');
    await sleep(100);
    assert.equal(r.raced.pipeline.inflight, 1, 'the cap is full');
    const cached = await udpQuery(r.port, 'fresh.example');
    assert.equal(cached.packet.rcode, 'NOERROR');
    assert.equal(firstData(cached.packet), '192.0.2.50', 'a cache hit waits on no upstream');
    const stale = await udpQuery(r.port, 'old.example');
    assert.equal(firstData(stale.packet), '192.0.2.50', 'a stale entry answers rather than REFUSED');
    assert.equal((stale.packet.answers![0] as { ttl?: number }).ttl, 30);
    assert.equal(firstData((await udpQuery(r.port, 'printer.lan')).packet), '192.0.2.99', 'a hosts-file name');
    assert.equal(firstData((await udpQuery(r.port, 'localhost')).packet), '127.0.0.1', 'localhost');
    assert.equal((await udpQuery(r.port, 'other.example')).packet.rcode, 'REFUSED', 'a name that would wait on upstreams');
    assert.equal(firstData((await slow).packet), '192.0.2.50');
    assert.equal(r.raced.pipeline.inflight, 0);
    assert.equal((await udpQuery(r.port, 'other.example')).packet.rcode, 'NOERROR', 'room again');
  } finally {
    await r.close();
    await up.close();
  }
});
