// Search domains (--enable-search, --search-domains, --ndots), --fwd-ndots and --no-rec.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Resolver } from 'node:dns/promises';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Stub } from './helpers/stub.js';
import { startRaced, udpQuery, firstData } from './helpers/client.js';
import { candidates } from '../src/search.js';

test('candidate order follows ndots', () => {
  const o = { domains: ['corp.example', 'example.net'], ndots: 1 };
  assert.deepEqual(candidates('redis', o), ['redis.corp.example', 'redis.example.net', 'redis']);
  assert.deepEqual(candidates('db.svc', o), ['db.svc', 'db.svc.corp.example', 'db.svc.example.net']);
  assert.deepEqual(candidates('db.svc', { ...o, ndots: 2 }), ['db.svc.corp.example', 'db.svc.example.net', 'db.svc']);
});

test('--enable-search: a single-label name is answered with a CNAME to the qualified name', async () => {
  const up = await Stub.start({ zone: 'corp.example', address: '192.0.2.21' });
  const r = await startRaced([up.label], { enableSearch: true, searchDomains: ['other.example', 'corp.example'], cacheSize: 100 });
  try {
    const { packet } = await udpQuery(r.port, 'redis');
    assert.equal(packet.rcode, 'NOERROR');
    assert.equal(packet.questions![0]!.name, 'redis', 'the question as asked');
    assert.equal(packet.answers![0]!.type, 'CNAME');
    assert.equal((packet.answers![0] as { data: string }).data, 'redis.corp.example');
    assert.equal(firstData(packet), '192.0.2.21');
    assert.deepEqual(
      up.received.map((q) => q.name),
      ['redis.other.example', 'redis.corp.example'],
    );
    const res = new Resolver();
    res.setServers([`127.0.0.1:${r.port}`]);
    assert.deepEqual(await res.resolve4('redis'), ['192.0.2.21']);
    // At least ndots dots: as asked first.
    up.reset();
    const abs = await udpQuery(r.port, 'db.corp.example');
    assert.equal(firstData(abs.packet), '192.0.2.21');
    assert.deepEqual(
      up.received.map((q) => q.name),
      ['db.corp.example'],
    );
    // Found nowhere: NXDOMAIN for the name as asked.
    const none = await udpQuery(r.port, 'nxthing');
    assert.equal(none.packet.rcode, 'NXDOMAIN');
    assert.equal(none.packet.questions![0]!.name, 'nxthing');
  } finally {
    await r.close();
    await up.close();
  }
});

test('--fwd-ndots: names with too few dots are not forwarded; --no-rec forwards nothing', async () => {
  const up = await Stub.start();
  const hosts = join(mkdtempSync(join(tmpdir(), 'raced-norec-')), 'hosts');
  writeFileSync(hosts, '192.0.2.99 printer\n');
  let r = await startRaced([up.label], { fwdNdots: 1 });
  try {
    assert.equal((await udpQuery(r.port, 'single')).packet.rcode, 'NXDOMAIN');
    assert.equal(up.count(), 0);
    assert.equal((await udpQuery(r.port, 'two.labels')).packet.rcode, 'NOERROR');
    assert.equal(up.count(), 1);
  } finally {
    await r.close();
  }
  up.reset();
  r = await startRaced([up.label], { noRec: true, hostsFiles: [hosts] });
  try {
    assert.equal((await udpQuery(r.port, 'www.example')).packet.rcode, 'REFUSED');
    assert.equal(firstData((await udpQuery(r.port, 'printer')).packet), '192.0.2.99');
    assert.equal(up.count(), 0);
  } finally {
    await r.close();
    await up.close();
  }
});
