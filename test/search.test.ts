// Search domains (--enable-search, --search-domains, --ndots), --fwd-ndots and --no-rec.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Resolver } from 'node:dns/promises';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import dgram from 'node:dgram';
import { Stub } from './helpers/stub.js';
import { startRaced, udpQuery, udpRaw, makeQuery, decode, firstData, tcpExchange } from './helpers/client.js';
import { spawnRaced, freePort } from './helpers/process.js';
import { candidates } from '../src/search.js';
import { expandName } from '../src/wire/alias.js';

const hasDig = spawnSync('sh', ['-c', 'command -v dig']).status === 0;

async function dig(port: number, name: string, type: string): Promise<{ status: string; answers: string[] }> {
  const { stdout } = await promisify(execFile)('dig', [`@127.0.0.1`, '-p', String(port), name, type, '+tries=1', '+time=3', '+noall', '+comments', '+answer'], { encoding: 'utf8', timeout: 10_000 });
  const status = /status: (\w+)/.exec(stdout)?.[1] ?? 'none';
  const answers = stdout
    .split('\n')
    .filter((l) => l && !l.startsWith(';'))
    .map((l) => l.split(/\s+/).filter((_, i) => i !== 1).join(' '));
  return { status, answers };
}

async function resolverCode(p: Promise<unknown>): Promise<string> {
  try {
    return `ok:${JSON.stringify(await p)}`;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? String(err);
  }
}

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

test(
  'search with a hosts file and an NXDOMAIN stand-in: a name found by any try is NODATA, never NXDOMAIN (dig, dns.Resolver)',
  { skip: !hasDig && 'dig not installed' },
  async () => {
    const up = await Stub.start({ zone: 'nowhere.invalid' }); // NXDOMAIN (with SOA) for every name raced asks
    const hosts = join(mkdtempSync(join(tmpdir(), 'raced-search-')), 'hosts');
    writeFileSync(hosts, '10.5.5.5 svc.lan\n');
    const r = await startRaced([up.label], { enableSearch: true, searchDomains: ['lan'], hostsFiles: [hosts], cacheSize: 100 });
    try {
      const a = await dig(r.port, 'svc', 'A');
      assert.equal(a.status, 'NOERROR');
      assert.deepEqual(a.answers, ['svc. IN CNAME svc.lan.', 'svc.lan. IN A 10.5.5.5']);
      for (const type of ['AAAA', 'MX', 'TXT']) {
        const nodata = await dig(r.port, 'svc', type);
        assert.equal(nodata.status, 'NOERROR', `svc ${type}: svc.lan exists, so NODATA`);
        assert.deepEqual(nodata.answers, ['svc. IN CNAME svc.lan.'], `svc ${type}: the alias, no records of the type`);
      }
      assert.equal((await dig(r.port, 'svc.lan', 'AAAA')).status, 'NOERROR');
      assert.equal((await dig(r.port, 'nothing', 'A')).status, 'NXDOMAIN', 'found by no try: NXDOMAIN');
      assert.equal((await dig(r.port, 'nothing', 'AAAA')).status, 'NXDOMAIN');
      // c-ares (Node's dns.Resolver): no records and no error for the alias (before: ENOTFOUND).
      const res = new Resolver({ timeout: 3000, tries: 1 });
      res.setServers([`127.0.0.1:${r.port}`]);
      assert.deepEqual(await res.resolve4('svc'), ['10.5.5.5']);
      assert.equal(await resolverCode(res.resolve6('svc')), 'ok:[]');
      assert.equal(await resolverCode(res.resolveMx('svc')), 'ok:[]');
      assert.equal(await resolverCode(res.resolve6('svc.lan')), 'ENODATA');
      assert.equal(await resolverCode(res.resolve6('nothing')), 'ENOTFOUND');
      // Over TCP the same.
      const [tcp] = await tcpExchange(r.port, [makeQuery('svc', { type: 'AAAA' })], 1);
      const p = decode(tcp!);
      assert.equal(p.rcode, 'NOERROR');
      assert.deepEqual(p.answers!.map((x) => x.type), ['CNAME']);
      // Every searched query is counted once, as the client's, with its RCODE.
      const replies = r.raced.pipeline.stats.replies;
      const counted = [...replies.udp, ...replies.tcp].reduce((x, y) => x + y, 0);
      assert.equal(counted, 13, 'the 12 UDP queries (dig and dns.Resolver) and 1 TCP query, internal tries not counted');
      assert.equal(r.raced.pipeline.stats.duration.count, 13);
    } finally {
      await r.close();
      await up.close();
    }
  },
);

test('search: a crafted client query and a crafted upstream reply do not kill raced; it answers the next query', async () => {
  // An upstream whose every reply carries a CNAME whose RDATA is a forward pointer (c0 ff):
  // structurally sound (the race accepts it), undecodable inside.
  const bad = dgram.createSocket('udp4');
  await new Promise<void>((res) => bad.bind(0, '127.0.0.1', res));
  bad.on('message', (q, rinfo) => {
    const qEnd = q.indexOf(0, 12) + 5;
    const out = Buffer.concat([q.subarray(0, qEnd), Buffer.from([0xc0, 0x0c, 0, 5, 0, 1, 0, 0, 0, 60, 0, 2, 0xc0, 0xff])]);
    out.writeUInt16BE(0x8180, 2);
    out.writeUInt16BE(1, 6);
    out.writeUInt16BE(0, 8);
    out.writeUInt16BE(0, 10);
    bad.send(out, rinfo.port, rinfo.address);
  });
  const hosts = join(mkdtempSync(join(tmpdir(), 'raced-search-')), 'hosts');
  writeFileSync(hosts, '10.5.5.5 svc.lan\n');
  const port = await freePort();
  const { child, log } = await spawnRaced([
    '--listen', `127.0.0.1:${port}`, '--server', `127.0.0.1:${bad.address().port}`, '--enable-search', '--search-domains', 'lan',
    '--hostsfile', hosts, '--cache-size', '0', '--timeout', '1000',
  ]);
  try {
    // A client query with an extra CNAME record whose RDATA points forward.
    const q = makeQuery('svc');
    const crafted = Buffer.concat([q, Buffer.from([0, 0, 5, 0, 1, 0, 0, 0, 60, 0, 2, 0xc0, 0xff])]);
    crafted.writeUInt16BE(1, 10);
    const first = await udpRaw(port, crafted);
    assert.ok(first, 'a reply to the crafted query');
    assert.equal(decode(first).rcode, 'NOERROR', 'the question is sound: it is searched like any other');
    assert.equal(firstData(decode(first)), '10.5.5.5');
    // A name only the crafted upstream knows: its reply cannot be rewritten behind a CNAME.
    const second = await udpQuery(port, 'web');
    assert.equal(second.packet.rcode, 'SERVFAIL');
    assert.equal(second.packet.questions![0]!.name, 'web');
    // Still running, and answering.
    assert.equal(child.exitCode, null, log());
    const next = await udpQuery(port, 'svc');
    assert.equal(next.packet.rcode, 'NOERROR');
    assert.equal(firstData(next.packet), '10.5.5.5');
    assert.doesNotMatch(log(), /Unhandled|TypeError|RangeError|Error:/);
  } finally {
    child.kill('SIGTERM');
    bad.close();
  }
});

test('search with --round-robin: the qualified name\'s records are compressed behind the CNAME and rotate', async () => {
  const hosts = join(mkdtempSync(join(tmpdir(), 'raced-search-')), 'hosts');
  writeFileSync(hosts, '10.0.0.1 pool.lan\n10.0.0.2 pool.lan\n10.0.0.3 pool.lan\n');
  const up = await Stub.start({ zone: 'nowhere.invalid' });
  const r = await startRaced([up.label], { enableSearch: true, searchDomains: ['lan'], hostsFiles: [hosts], roundRobin: true });
  try {
    const firsts = new Set<string>();
    for (let i = 0; i < 3; i++) {
      const { raw, packet } = await udpQuery(r.port, 'pool');
      assert.deepEqual(packet.answers!.map((a) => a.type), ['CNAME', 'A', 'A', 'A']);
      assert.ok(packet.answers!.slice(1).every((a) => a.name === 'pool.lan'));
      // Header 12 + question "pool" 10 + CNAME 12+10: the A records' owners point at the CNAME's RDATA (offset 34).
      assert.equal(raw.readUInt16BE(44), 0xc000 | 34);
      firsts.add(firstData(packet)!);
    }
    assert.equal(firsts.size, 3, 'each reply starts with another address');
  } finally {
    await r.close();
    await up.close();
  }
});

test('expandName: pointers followed backwards only; loops, forward pointers and overlong names are malformed', () => {
  const msg = Buffer.concat([Buffer.alloc(12), Buffer.from([3, 0x77, 0x77, 0x77, 0, 1, 0x61, 0xc0, 12, 0xc0, 21])]);
  assert.deepEqual(expandName(msg, 17, msg.length)?.name, Buffer.from([1, 0x61, 3, 0x77, 0x77, 0x77, 0]));
  assert.equal(expandName(msg, 17, msg.length)?.next, 21);
  assert.equal(expandName(msg, 21, msg.length), null, 'a pointer to itself');
  const loop = Buffer.concat([Buffer.alloc(12), Buffer.from([1, 0x61, 0xc0, 12])]);
  assert.equal(expandName(loop, 12, loop.length), null, 'a label then a pointer back to it');
  const fwd = Buffer.concat([Buffer.alloc(12), Buffer.from([0xc0, 0xff])]);
  assert.equal(expandName(fwd, 12, fwd.length), null);
  const long = Buffer.concat([Buffer.alloc(12), ...Array.from({ length: 5 }, () => Buffer.concat([Buffer.from([63]), Buffer.alloc(63, 0x61)])), Buffer.from([0])]);
  assert.equal(expandName(long, 12, long.length), null, 'over 255 bytes');
});
