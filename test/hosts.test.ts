// Hosts files answered locally: A/AAAA, several names per line, wildcards,
// NODATA, PTR, reloads while queries flow, and errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { Resolver } from 'node:dns/promises';
import { Stub } from './helpers/stub.js';
import { startRaced, udpQuery, firstData, sleep } from './helpers/client.js';
import { emptyTable, lookupHosts, parseHosts, reverseName } from '../src/hosts/hosts.js';

const dir = mkdtempSync(join(tmpdir(), 'raced-hosts-'));
const CLI = fileURLToPath(new URL('../src/main.js', import.meta.url));

test('parsing: several names per line, comments, IPv6, wildcards, bad lines reported with their number', () => {
  const t = emptyTable();
  const problems = parseHosts(
    ['# comment', '192.0.2.1 db1.db.local db1 # trailing', '2001:db8::5 db1.db.local', '192.0.2.9 *.db.local', 'not-an-ip foo', '192.0.2.2', '192.0.2.3 bad_name!'].join('\n'),
    'h',
    t,
  );
  assert.deepEqual(
    problems.map((p) => p.line),
    [5, 6, 7],
  );
  assert.deepEqual(lookupHosts(t, 'db1.db.local', 1), { kind: 'addresses', addrs: [Buffer.from([192, 0, 2, 1])] });
  assert.equal(lookupHosts(t, 'db1', 1)?.kind, 'addresses');
  assert.deepEqual(lookupHosts(t, 'db2.db.local', 1), { kind: 'addresses', addrs: [Buffer.from([192, 0, 2, 9])] });
  assert.deepEqual(lookupHosts(t, 'a.b.db.local', 1), { kind: 'addresses', addrs: [Buffer.from([192, 0, 2, 9])] });
  assert.equal(lookupHosts(t, 'db.local', 1), null, 'the wildcard matches subdomains only');
  assert.deepEqual(lookupHosts(t, 'db1.db.local', 15), { kind: 'nodata' });
  assert.deepEqual(lookupHosts(t, reverseName('192.0.2.1'), 12), { kind: 'ptr', name: 'db1.db.local' });
  assert.equal(reverseName('2001:db8::5').endsWith('.8.b.d.0.1.0.0.2.ip6.arpa'), true);
});

test('raced answers from hosts files, never upstream; other names still race', async () => {
  const file = join(dir, 'hosts');
  writeFileSync(file, '192.0.2.1 db1.db.local\n2001:db8::5 db1.db.local\n192.0.2.9 *.db.local\n');
  const up = await Stub.start({ address: '198.51.100.1' });
  const r = await startRaced([up.label], { hostsFiles: [file], hostsTtl: 7 });
  try {
    const a = await udpQuery(r.port, 'DB1.db.local');
    assert.equal(firstData(a.packet), '192.0.2.1');
    assert.equal((a.packet.answers![0] as { ttl: number }).ttl, 7);
    assert.ok(a.packet.flags! & 0x0400, 'authoritative');
    assert.equal(a.packet.questions![0]!.name, 'DB1.db.local');
    assert.equal(firstData((await udpQuery(r.port, 'db1.db.local', { type: 'AAAA' })).packet, 'AAAA'), '2001:db8::5');
    assert.equal(firstData((await udpQuery(r.port, 'other.db.local')).packet), '192.0.2.9');
    const mx = await udpQuery(r.port, 'db1.db.local', { type: 'MX' });
    assert.equal(mx.packet.rcode, 'NOERROR');
    assert.equal(mx.packet.answers!.length, 0);
    const ptr = await udpQuery(r.port, '1.2.0.192.in-addr.arpa', { type: 'PTR' });
    assert.equal(firstData(ptr.packet, 'PTR'), 'db1.db.local');
    assert.equal(up.count(), 0, 'nothing went upstream');
    assert.equal(firstData((await udpQuery(r.port, 'www.example')).packet), '198.51.100.1');
    const res = new Resolver();
    res.setServers([`127.0.0.1:${r.port}`]);
    assert.deepEqual(await res.resolve4('db1.db.local'), ['192.0.2.1']);
    if (spawnSync('sh', ['-c', 'command -v dig']).status === 0) {
      const { stdout } = await promisify(execFile)('dig', ['@127.0.0.1', '-p', String(r.port), '+tries=1', 'any-name.db.local']);
      assert.match(stdout, /flags: qr aa rd ra;/);
      assert.match(stdout, /any-name\.db\.local\.\s+7\s+IN\s+A\s+192\.0\.2\.9/);
    }
    assert.deepEqual(await res.reverse('192.0.2.1'), ['db1.db.local']);
  } finally {
    await r.close();
    await up.close();
  }
});

test('localhost and names under it are answered here (RFC 6761), never forwarded', async () => {
  const up = await Stub.start({ address: '198.51.100.1' });
  const r = await startRaced([up.label]);
  try {
    const a = await udpQuery(r.port, 'LocalHost');
    assert.equal(firstData(a.packet), '127.0.0.1');
    assert.equal(a.packet.questions![0]!.name, 'LocalHost');
    assert.equal(firstData((await udpQuery(r.port, 'localhost', { type: 'AAAA' })).packet, 'AAAA'), '::1');
    assert.equal(firstData((await udpQuery(r.port, 'app.dev.localhost')).packet), '127.0.0.1');
    const mx = await udpQuery(r.port, 'localhost', { type: 'MX' });
    assert.equal(mx.packet.rcode, 'NOERROR');
    assert.equal(mx.packet.answers!.length, 0);
    const res = new Resolver();
    res.setServers([`127.0.0.1:${r.port}`]);
    assert.deepEqual(await res.resolve6('x.localhost'), ['::1']);
    assert.equal(up.count(), 0, 'nothing went upstream');
    // Only the last label counts: these are ordinary names.
    assert.equal(firstData((await udpQuery(r.port, 'localhost.example')).packet), '198.51.100.1');
    assert.equal(firstData((await udpQuery(r.port, 'notlocalhost')).packet), '198.51.100.1');
    assert.equal(up.count(), 2);
  } finally {
    await r.close();
    await up.close();
  }
});

test('--hostsfile-poll: reloads while queries flow; an unreadable file keeps the old entries', async () => {
  const file = join(dir, 'hosts-poll');
  writeFileSync(file, '192.0.2.1 svc.local\n');
  const up = await Stub.start();
  const r = await startRaced([up.label], { hostsFiles: [file], hostsPoll: 1 });
  try {
    let stop = false;
    let failures = 0;
    const flow = (async () => {
      while (!stop) {
        const ans = firstData((await udpQuery(r.port, 'svc.local')).packet);
        if (ans !== '192.0.2.1' && ans !== '192.0.2.2') failures++;
        await sleep(20);
      }
    })();
    await sleep(100);
    writeFileSync(file, '192.0.2.2 svc.local\n# edited\n');
    let got = '';
    for (let i = 0; i < 40 && got !== '192.0.2.2'; i++) {
      await sleep(100);
      got = firstData((await udpQuery(r.port, 'svc.local')).packet) ?? '';
    }
    assert.equal(got, '192.0.2.2');
    rmSync(file);
    r.raced.pipeline.hosts!.reload();
    assert.equal(firstData((await udpQuery(r.port, 'svc.local')).packet), '192.0.2.2', 'old entries kept');
    assert.ok(r.logs.some((l) => /cannot read hosts file .*ENOENT.*keeping/.test(l)));
    stop = true;
    await flow;
    assert.equal(failures, 0, 'no query failed during the reload');
  } finally {
    await r.close();
    await up.close();
  }
});

test('a missing hosts file is a clear start-up error', () => {
  const res = spawnSync(process.execPath, [CLI, '--listen', '127.0.0.1:0', '--server', '127.0.0.1:5353', '--hostsfile', join(dir, 'nope')], { encoding: 'utf8' });
  assert.equal(res.status, 1);
  assert.match(res.stderr, /cannot read hosts file .*nope: ENOENT/);
});

test('--round-robin rotates A records per reply, local answers and cache hits alike', async () => {
  const file = join(dir, 'hosts-rr');
  writeFileSync(file, '192.0.2.1 rr.local\n192.0.2.2 rr.local\n192.0.2.3 rr.local\n');
  const up = await Stub.start();
  const r = await startRaced([up.label], { hostsFiles: [file], roundRobin: true });
  try {
    const firsts = new Set<string>();
    for (let i = 0; i < 3; i++) {
      const { packet } = await udpQuery(r.port, 'rr.local');
      assert.equal(packet.answers!.length, 3);
      firsts.add(firstData(packet)!);
      assert.deepEqual(packet.answers!.map((a) => (a as { data: string }).data).sort(), ['192.0.2.1', '192.0.2.2', '192.0.2.3']);
    }
    assert.equal(firsts.size, 3, 'each address came first once');
  } finally {
    await r.close();
    await up.close();
  }
});
