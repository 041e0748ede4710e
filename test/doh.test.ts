// DNS over HTTPS upstreams: unbound 1.17 serving DoH (HTTP/2, built with
// nghttp2) with a throw-away CA made by openssl, and a Node HTTP/2 stand-in
// for what unbound will not do on demand (GOAWAY, wrong content type).
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import net from 'node:net';
import tls from 'node:tls';
import { makePki, startUnbound, type Pki } from './helpers/dot.js';
import { DohStub, startDnsdist } from './helpers/doh.js';
import { Stub } from './helpers/stub.js';
import { startRaced, udpQuery, tcpExchange, makeQuery, decode, sleep, firstData, type Running } from './helpers/client.js';
import { CLI, exited, freeTcpPort, silentTcpServer, spawnRaced } from './helpers/process.js';
import { parseMetrics } from '../src/status.js';
import { parseServerItem } from '../src/config/options.js';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseUpstream, type Upstream } from '../src/upstream/upstream.js';
import type { DohPool } from '../src/upstream/doh-pool.js';

const has = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const exec = async (cmd: string, args: string[]): Promise<string> => (await promisify(execFile)(cmd, args, { encoding: 'utf8', timeout: 20000 })).stdout;
const noUnbound = !has('unbound') && 'unbound not installed';

let pki: Pki;
before(() => {
  pki = makePki(['dns.test']);
});

function upstream(r: Running, prefix: string): Upstream {
  const u = r.raced.upstreams.find((x) => x.label.startsWith(prefix));
  assert.ok(u, `upstream ${prefix} in ${r.raced.upstreams.map((x) => x.label).join(', ')}`);
  return u;
}
const doh = (u: Upstream): DohPool => u.stream as DohPool;

test('https:// upstream syntax: NAME@ADDR, port 443 and /dns-query by default, a path, a name for the bootstrap; bad input refused', () => {
  const a = parseUpstream('https://dns.example@192.0.2.1');
  assert.deepEqual([a.transport, a.tlsName, a.endpoint.host, a.endpoint.port, a.path, a.label], ['https', 'dns.example', '192.0.2.1', 443, '/dns-query', 'https://dns.example@192.0.2.1:443/dns-query']);
  const b = parseUpstream('https://[2001:db8::1]:8443/q');
  assert.deepEqual([b.tlsName, b.endpoint.host, b.endpoint.port, b.path, b.label], [null, '2001:db8::1', 8443, '/q', 'https://[2001:db8::1]:8443/q']);
  const c = parseUpstream('https://Dns.Example.:444/dns');
  assert.deepEqual([c.hostName, c.tlsName, c.endpoint.port, c.path, c.label], ['dns.example', 'dns.example', 444, '/dns', 'https://dns.example:444/dns']);
  assert.throws(() => parseUpstream('https://dns.example@other.example'), /needs an IP address/);
  assert.throws(() => parseUpstream('https://bad name@192.0.2.1'), /bad TLS server name/);
  assert.throws(() => parseUpstream('https://192.0.2.1/a b'), /bad DoH path/);
  assert.throws(() => parseUpstream('https://192.0.2.1:99999'), /port out of range/);
  assert.throws(() => parseUpstream('http://192.0.2.1'), /unknown upstream scheme 'http'/);
});

test('verified DoH to unbound: dig over UDP and TCP, kdig and by IP address, one HTTP/2 connection, no keepalive or padding reaches the client', { skip: noUnbound }, async () => {
  const ub = await startUnbound(pki, { doh: true });
  const r = await startRaced([`https://dns.test@127.0.0.1:${ub.httpsPort}`], { tlsCa: [pki.caFile] });
  try {
    if (has('dig')) {
      const udp = await exec('dig', ['@127.0.0.1', '-p', String(r.port), 'a.local.test', '+tries=1', '+time=3']);
      assert.match(udp, /a\.local\.test\.\s+\d+\s+IN\s+A\s+192\.0\.2\.1/);
      assert.doesNotMatch(udp, /PAD|KEEPALIVE/i);
      assert.match(await exec('dig', ['@127.0.0.1', '-p', String(r.port), '+tcp', 'a.local.test', '+tries=1', '+short']), /^192\.0\.2\.1$/m);
    }
    if (has('kdig')) assert.match(await exec('kdig', ['@127.0.0.1', '-p', String(r.port), 'a.local.test', '+retry=0', '+short']), /192\.0\.2\.1/);
    const [raw] = await tcpExchange(r.port, [makeQuery('a.local.test', { edns: true })], 1);
    assert.equal(firstData(decode(raw!)), '192.0.2.1');
    const s = doh(upstream(r, 'https://')).stats;
    assert.equal(s.opened, 1, 'every query on one connection');
    assert.equal(s.handshakes, 1);
    assert.ok(s.streams >= 3);
    assert.equal(s.errors.verify, 0);
    // Without a name, the certificate must carry the IP address (this one does).
    const byIp = await startRaced([`https://127.0.0.1:${ub.httpsPort}`], { tlsCa: [pki.caFile] });
    try {
      assert.equal(firstData((await udpQuery(byIp.port, 'a.local.test')).packet), '192.0.2.1');
    } finally {
      await byIp.close();
    }
  } finally {
    await r.close();
    await ub.stop();
  }
});

test('300 concurrent client queries ride one or two HTTP/2 connections; a new one only at the server stream limit', { skip: noUnbound }, async () => {
  const stub = await Stub.start({ delayMs: 150 });
  const ub = await startUnbound(pki, { doh: true, httpMaxStreams: 200, forwardPort: stub.port });
  const r = await startRaced([`https://dns.test@127.0.0.1:${ub.httpsPort}`], { tlsCa: [pki.caFile], tlsPool: 4, timeoutMs: 5000 });
  try {
    await udpQuery(r.port, 'a.local.test');
    const replies = await Promise.all(Array.from({ length: 300 }, (_, i) => udpQuery(r.port, `c${i}.example`, {}, 8000)));
    for (const { packet } of replies) assert.equal(firstData(packet), '192.0.2.1');
    const s = doh(upstream(r, 'https://')).stats;
    assert.ok(s.opened >= 1 && s.opened <= 2, `connections: ${s.opened}`);
    assert.equal(s.streams, 301);
    assert.equal(s.httpErrors.status + s.httpErrors.reset, 0);
  } finally {
    await r.close();
    await ub.stop();
    await stub.close();
  }
});

test('certificate for another name, or from an unknown CA: SERVFAIL at once, counted and logged, the upstream down', { skip: noUnbound }, async () => {
  const ub = await startUnbound(pki, { doh: true });
  try {
    for (const [server, ca, why] of [
      [`https://wrong.test@127.0.0.1:${ub.httpsPort}`, [pki.caFile], 'wrong name'],
      [`https://dns.test@127.0.0.1:${ub.httpsPort}`, [], 'unknown CA'],
    ] as const) {
      const r = await startRaced([server], { tlsCa: [...ca], timeoutMs: 1500 });
      try {
        const t0 = Date.now();
        assert.equal((await udpQuery(r.port, 'a.local.test')).packet.rcode, 'SERVFAIL', why);
        assert.ok(Date.now() - t0 < 1000, `${why}: ${Date.now() - t0} ms`);
        const u = upstream(r, 'https://');
        assert.equal(doh(u).stats.errors.verify, 1, why);
        assert.equal(doh(u).stats.handshakes, 0, why);
        assert.equal(u.health.up, false, why);
        assert.ok(r.logs.some((l) => /certificate verification failed/.test(l)), r.logs.join('\n'));
      } finally {
        await r.close();
      }
    }
  } finally {
    await ub.stop();
  }
});

test('HTTP errors fail the leg at once: a wrong path (404 from unbound), a wrong content type, a body that is no DNS message', { skip: noUnbound }, async () => {
  const ub = await startUnbound(pki, { doh: true });
  const ctype = await DohStub.start({ key: pki.key, cert: pki.cert, contentType: 'text/html' });
  const garbage = await DohStub.start({ key: pki.key, cert: pki.cert, body: 'garbage' });
  try {
    for (const [server, kind] of [
      [`https://dns.test@127.0.0.1:${ub.httpsPort}/wrong-path`, 'status'],
      [`https://dns.test@127.0.0.1:${ctype.port}`, 'content_type'],
      [`https://dns.test@127.0.0.1:${garbage.port}`, 'body'],
    ] as const) {
      const r = await startRaced([server], { tlsCa: [pki.caFile], timeoutMs: 3000 });
      try {
        const t0 = Date.now();
        assert.equal((await udpQuery(r.port, 'a.local.test')).packet.rcode, 'SERVFAIL', server);
        assert.ok(Date.now() - t0 < 1000, `${kind}: ${Date.now() - t0} ms, not the 3 s deadline`);
        const u = upstream(r, 'https://');
        assert.equal(doh(u).stats.httpErrors[kind], 1, `${kind}: ${JSON.stringify(doh(u).stats.httpErrors)}`);
        assert.equal(u.stats.errors.https, 1);
        assert.equal(doh(u).stats.opened, 1, 'the connection itself is fine and kept');
      } finally {
        await r.close();
      }
    }
  } finally {
    await ub.stop();
    await ctype.close();
    await garbage.close();
  }
});

test('queries go out with ID 0, padded to 128-byte blocks (RFC 8467), no EDNS keepalive', async () => {
  const stub = await DohStub.start({ key: pki.key, cert: pki.cert });
  const r = await startRaced([`https://dns.test@127.0.0.1:${stub.port}`], { tlsCa: [pki.caFile] });
  try {
    for (const name of ['a.example', 'a-much-longer-name-than-the-other.example']) assert.equal(firstData((await udpQuery(r.port, name)).packet), '192.0.2.1');
    assert.deepEqual(stub.ids, [0, 0]);
    assert.deepEqual(stub.sizes, [128, 128]);
  } finally {
    await r.close();
    await stub.close();
  }
});

test('GOAWAY mid-load: the streams the server refused are re-sent on a new connection, no query lost', async () => {
  const stub = await DohStub.start({ key: pki.key, cert: pki.cert, goawayAfter: 25, delayMs: 20 });
  const r = await startRaced([`https://dns.test@127.0.0.1:${stub.port}`], { tlsCa: [pki.caFile], tlsPool: 1, timeoutMs: 3000 });
  try {
    const replies = await Promise.all(Array.from({ length: 100 }, (_, i) => udpQuery(r.port, `g${i}.example`)));
    for (const { packet } of replies) assert.equal(firstData(packet), '192.0.2.1');
    const s = doh(upstream(r, 'https://')).stats;
    assert.ok(s.goaways >= 1, `GOAWAY seen: ${s.goaways}`);
    assert.ok(s.resumed >= 1, `the new connections resumed the TLS session: ${JSON.stringify(s)}`);
    assert.ok(s.resent >= 1, `refused streams re-sent: ${s.resent}`);
    assert.ok(stub.connections >= 2);
  } finally {
    await r.close();
    await stub.close();
  }
});

test('unbound restarted mid-load (the new one on the same port first): no query lost', { skip: noUnbound }, async () => {
  const first = await startUnbound(pki, { doh: true, reusePort: true });
  const r = await startRaced([`https://dns.test@127.0.0.1:${first.httpsPort}`], { tlsCa: [pki.caFile], timeoutMs: 3000 });
  try {
    let second: Awaited<ReturnType<typeof startUnbound>> | null = null;
    let restartedAt = 0;
    const load = (async () => {
      let n = 0;
      const t0 = Date.now();
      // Until half a second after the old server is gone; bounded in count and time.
      while ((restartedAt === 0 || Date.now() - restartedAt < 500) && Date.now() - t0 < 10_000 && n < 20_000) {
        const batch = await Promise.all(Array.from({ length: 20 }, (_, i) => udpQuery(r.port, 'a.local.test', { id: (n + i) & 0xffff })));
        for (const { packet } of batch) assert.equal(firstData(packet), '192.0.2.1', `query ${n}`);
        n += 20;
      }
      return n;
    })();
    await sleep(300);
    second = await startUnbound(pki, { doh: true, reusePort: true, httpsPort: first.httpsPort! });
    await first.stop();
    restartedAt = Date.now();
    const n = await load;
    const s = doh(upstream(r, 'https://')).stats;
    assert.ok(n >= 200, `${n} queries`);
    assert.ok(s.opened >= 2, `a new connection after the restart (${s.opened})`);
    await second.stop();
  } finally {
    await r.close();
  }
});

test('a DoH upstream that accepts TCP and never handshakes, or is closed, beside a live plain one: costs nothing, marked down', async () => {
  const live = await Stub.start({ address: '192.0.2.7' });
  const closedPort = await freeTcpPort();
  const silent = await silentTcpServer();
  const silentPort = silent.port;
  const r = await startRaced([`https://dns.test@127.0.0.1:${closedPort}`, `https://dns.test@127.0.0.1:${silentPort}`, live.label], {
    tlsCa: [pki.caFile],
    tlsHandshakeTimeoutMs: 300,
    timeoutMs: 2000,
  });
  try {
    for (let i = 0; i < 20; i++) {
      const t0 = Date.now();
      assert.equal(firstData((await udpQuery(r.port, `mixed${i}.example`)).packet), '192.0.2.7');
      assert.ok(Date.now() - t0 < 200, `query ${i} took ${Date.now() - t0} ms`);
    }
    await sleep(400);
    const dead = upstream(r, `https://dns.test@127.0.0.1:${closedPort}`);
    const mute = upstream(r, `https://dns.test@127.0.0.1:${silentPort}`);
    assert.ok(doh(dead).stats.errors.connect >= 1);
    assert.equal(dead.health.up, false);
    assert.ok(doh(mute).stats.errors.handshake >= 1);
    assert.equal(mute.health.up, false);
  } finally {
    await r.close();
    silent.close();
    await live.close();
  }
});

test('a DoH server that goes away: down at once, a query to it still tries to connect, and it is back within about a second of returning', async () => {
  const first = await DohStub.start({ key: pki.key, cert: pki.cert });
  const port = first.port;
  const r = await startRaced([`https://dns.test@127.0.0.1:${port}`], { tlsCa: [pki.caFile], timeoutMs: 1500 });
  try {
    assert.equal(firstData((await udpQuery(r.port, 'a.example')).packet), '192.0.2.1');
    await first.close();
    const u = upstream(r, 'https://');
    const t0 = Date.now();
    // The closed connection is replaced on the next query; that connect is refused: down at once, SERVFAIL.
    assert.equal((await udpQuery(r.port, 'b.example')).packet.rcode, 'SERVFAIL');
    assert.ok(Date.now() - t0 < 500, `SERVFAIL at once, not at the deadline (${Date.now() - t0} ms)`);
    assert.equal(u.health.up, false);
    await sleep(1500);
    const second = await DohStub.start({ key: pki.key, cert: pki.cert, port });
    try {
      // Asked while down (nothing better is left): it connects at once, no waiting for a probe or a backoff.
      const t1 = Date.now();
      assert.equal(firstData((await udpQuery(r.port, 'c.example')).packet), '192.0.2.1');
      assert.ok(Date.now() - t1 < 500, `the first query after the return answered in ${Date.now() - t1} ms`);
      const t2 = Date.now();
      while (!u.health.up && Date.now() - t2 < 3000) await sleep(50);
      assert.ok(u.health.up, 'up again');
      assert.ok(doh(u).stats.errors.connect >= 1);
    } finally {
      await second.close();
    }
  } finally {
    await r.close();
  }
});

// --- Bootstrap: upstream names resolved through plain resolvers ---

/** A plain stand-in resolver that says what `addr()` says for dns.test (A only; AAAA empty), NXDOMAIN while it is null. */
function bootstrapStub(addr: () => string | null, ttl = 300): Promise<Stub> {
  return Stub.start({
    answers: (name, type) => {
      const a = addr();
      return name.toLowerCase() === 'dns.test' && type === 'A' && a !== null ? [{ name, type: 'A', ttl, data: a }] : [];
    },
  });
}

test('bootstrap by name: https://dns.test:PORT resolved through --bootstrap, verified for that name; the resolver is never raced', { skip: noUnbound }, async () => {
  const boot = await bootstrapStub(() => '127.0.0.1');
  // unbound forwards what is not local (the health probe's `. NS`) to the stand-in.
  const ub = await startUnbound(pki, { doh: true, forwardPort: boot.port });
  const r = await startRaced([`https://dns.test:${ub.httpsPort}`], { tlsCa: [pki.caFile], bootstrap: [parseUpstream(boot.label).endpoint] });
  try {
    const u = upstream(r, 'https://');
    assert.equal(u.label, `https://dns.test:${ub.httpsPort}/dns-query`);
    const t0 = Date.now();
    while (!u.health.up && Date.now() - t0 < 4000) await sleep(50);
    assert.ok(u.health.up, `up once resolved: ${r.logs.join('\n')}`);
    assert.equal(firstData((await udpQuery(r.port, 'a.local.test')).packet), '192.0.2.1');
    assert.deepEqual(
      boot.received.filter((q) => q.name.toLowerCase() === 'dns.test').map((q) => q.type).sort(),
      ['A', 'AAAA'],
      'asked A and AAAA once',
    );
    assert.ok(!boot.received.some((q) => q.name === 'a.local.test'), 'the client query went over DoH only');
    assert.ok(r.logs.some((l) => /dns\.test is 127\.0\.0\.1 \(TTL 300 s\)/.test(l)), r.logs.join('\n'));
  } finally {
    await r.close();
    await ub.stop();
    await boot.close();
  }
});

test('a name that resolves only later: raced starts, the upstream is down (logged) until it resolves, then answers', { skip: noUnbound }, async () => {
  let addr: string | null = null;
  const boot = await bootstrapStub(() => addr);
  const ub = await startUnbound(pki, { doh: true, forwardPort: boot.port });
  const r = await startRaced([`https://dns.test:${ub.httpsPort}`], { tlsCa: [pki.caFile], bootstrap: [parseUpstream(boot.label).endpoint], timeoutMs: 1000 });
  try {
    const u = upstream(r, 'https://');
    assert.equal((await udpQuery(r.port, 'a.local.test')).packet.rcode, 'SERVFAIL');
    assert.equal(u.health.up, false);
    await sleep(300);
    assert.ok(r.logs.some((l) => /cannot resolve dns\.test: .*no A or AAAA record for dns\.test; down until it resolves/.test(l)), r.logs.join('\n'));
    addr = '127.0.0.1';
    const t0 = Date.now();
    while (!u.health.up && Date.now() - t0 < 6000) await sleep(50);
    assert.ok(u.health.up, 'up after the name resolved (retried with backoff)');
    assert.equal(firstData((await udpQuery(r.port, 'a.local.test')).packet), '192.0.2.1');
    assert.ok(u.bootstrap!.failures >= 1);
  } finally {
    await r.close();
    await ub.stop();
    await boot.close();
  }
});

test('NameWatch: asks again before the TTL runs out, follows a changed address, keeps the last good one when the resolver fails', async () => {
  const { NameWatch } = await import('../src/upstream/bootstrap.js');
  let addr: string | null = '192.0.2.10';
  const boot = await bootstrapStub(() => addr, 1);
  const seen: string[] = [];
  const failed: number[] = [];
  const w = new NameWatch('dns.test', 443, () => [parseUpstream(boot.label).endpoint], {
    resolved: (eps) => seen.push(eps.map((e) => e.label).join()),
    failed: (_m, kept) => failed.push(kept),
  }, 200);
  try {
    const t0 = Date.now();
    while (seen.length === 0 && Date.now() - t0 < 3000) await sleep(20);
    assert.deepEqual(seen, ['192.0.2.10:443']);
    addr = '192.0.2.11';
    // TTL 1 s: asked again after 900 ms.
    while (seen.length < 2 && Date.now() - t0 < 4000) await sleep(20);
    assert.deepEqual(seen, ['192.0.2.10:443', '192.0.2.11:443']);
    assert.ok(w.resolutions >= 2);
    boot.opts.behaviour = 'servfail';
    boot.opts.answers = undefined;
    while (failed.length === 0 && Date.now() - t0 < 6000) await sleep(20);
    assert.deepEqual(failed.slice(0, 1), [1], 'failure reported with the last good address kept');
    assert.deepEqual(
      w.addresses.map((e) => e.label),
      ['192.0.2.11:443'],
    );
  } finally {
    w.stop();
    await boot.close();
  }
});

test('the raced CLI: --bootstrap from RACED_BOOTSTRAP or the conf-file, an unresolvable name does not stop start-up; DoH metrics promtool-clean and in raced status', { skip: noUnbound }, async () => {
  let addr: string | null = null;
  const boot = await bootstrapStub(() => addr);
  const ub = await startUnbound(pki, { doh: true, forwardPort: boot.port });
  const port = await freeTcpPort();
  const mport = await freeTcpPort();
  const conf = join(pki.dir, 'raced-doh.conf');
  writeFileSync(conf, `bootstrap=${boot.label}\n`);
  const common = ['--listen', `127.0.0.1:${port}`, '--no-resolv', '--tls-ca', pki.caFile, '--metrics-listen', `127.0.0.1:${mport}`];
  try {
    for (const [how, args, env] of [
      ['RACED_BOOTSTRAP', [...common, '--server', `https://dns.test:${ub.httpsPort}`], { RACED_BOOTSTRAP: boot.label }],
      ['conf-file', [...common, '--server', `https://dns.test:${ub.httpsPort}`, '--conf-file', conf], {}],
    ] as const) {
      addr = null;
      const { child, log } = await spawnRaced([...args], env);
      try {
        await sleep(300);
        assert.equal(child.exitCode, null, `${how}: still running with the name unresolved`);
        assert.match(log(), /cannot resolve dns\.test: .*down until it resolves/, how);
        addr = '127.0.0.1';
        const t0 = Date.now();
        let answer: string | undefined;
        while (answer === undefined && Date.now() - t0 < 8000) {
          await sleep(200);
          answer = firstData((await udpQuery(port, 'a.local.test', {}, 3000)).packet);
        }
        assert.equal(answer, '192.0.2.1', `${how}: ${log()}`);
        const text = await (await fetch(`http://127.0.0.1:${mport}/metrics`)).text();
        if (has('promtool')) {
          const c = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
          assert.equal(c.status, 0, c.stdout + c.stderr);
          assert.equal((c.stdout + c.stderr).trim(), '');
        }
        const label = `https://dns.test:${ub.httpsPort}/dns-query`;
        const s = parseMetrics(text);
        const v = (name: string, extra: Record<string, string> = {}): number | undefined =>
          s.find((x) => x.name === name && x.labels.upstream === label && Object.entries(extra).every(([k, val]) => x.labels[k] === val))?.value;
        assert.equal(v('raced_upstream_bootstrap_addresses'), 1);
        assert.ok(v('raced_upstream_bootstrap_failures_total')! >= 1);
        assert.ok(v('raced_upstream_doh_streams_total')! >= 1);
        assert.equal(v('raced_upstream_doh_http_errors_total', { kind: 'status' }), 0);
        assert.equal(v('raced_upstream_connections_opened_total'), 1);
        assert.equal(v('raced_upstream_tls_handshakes_total'), 1);
        const st = await exec(process.execPath, [CLI, 'status', '--metrics-url', `http://127.0.0.1:${mport}/metrics`]);
        assert.match(st, new RegExp(`conn ${label.replace(/[./]/g, '\\$&')}: open 1, opened 1, handshakes 1 .*; streams \\d+, goaway 0, http errors -; bootstrap 1 address\\(es\\), \\d+ failures`), st);
      } finally {
        child.kill();
        await exited(child);
      }
    }
  } finally {
    await ub.stop();
    await boot.close();
  }
});

test('/domain/ routing to a DoH upstream: names under it go over HTTPS, the rest to the plain upstream', { skip: noUnbound }, async () => {
  const ub = await startUnbound(pki, { doh: true });
  const plain = await Stub.start({ address: '192.0.2.7' });
  const item = parseServerItem(`/local.test/https://dns.test@127.0.0.1:${ub.httpsPort}/dns-query`);
  assert.ok('routes' in item);
  const r = await startRaced([plain.label], { tlsCa: [pki.caFile], routes: item.routes });
  try {
    assert.equal(firstData((await udpQuery(r.port, 'a.local.test')).packet), '192.0.2.1');
    assert.equal(firstData((await udpQuery(r.port, 'other.example')).packet), '192.0.2.7');
    assert.ok(!plain.received.some((q) => q.name === 'a.local.test'));
    assert.equal(doh(upstream(r, 'https://')).stats.streams, 1);
  } finally {
    await r.close();
    await ub.stop();
    await plain.close();
  }
});

test('keepalive PING: an idle connection whose server stops answering is found dead by its unanswered PING and dropped', async () => {
  const stub = await DohStub.start({ key: pki.key, cert: pki.cert });
  // A TCP relay in front of the stand-in that can stop passing bytes (a dead path, no FIN or RST).
  let frozen = false;
  const relay = net.createServer((c) => {
    const up = net.connect(stub.port, '127.0.0.1');
    c.on('data', (d) => void (frozen || up.write(d)));
    up.on('data', (d) => void (frozen || c.write(d)));
    c.on('error', () => up.destroy());
    up.on('error', () => c.destroy());
    c.on('close', () => up.destroy());
    up.on('close', () => c.destroy());
  });
  await new Promise<void>((res) => relay.listen(0, '127.0.0.1', res));
  const port = (relay.address() as net.AddressInfo).port;
  const r = await startRaced([`https://dns.test@127.0.0.1:${port}`], { tlsCa: [pki.caFile], tlsIdleTimeoutMs: 9000, tlsReadTimeoutMs: 300 });
  try {
    assert.equal(firstData((await udpQuery(r.port, 'p.example')).packet), '192.0.2.1');
    const s = doh(upstream(r, 'https://')).stats;
    // A PING every 3 s while idle (a third of the idle timeout), answered: the connection stays.
    await sleep(3500);
    assert.equal(s.closed, 0, 'answered PINGs keep it');
    frozen = true;
    const t0 = Date.now();
    while (s.errors.read_timeout === 0 && Date.now() - t0 < 4000) await sleep(50);
    assert.ok(Date.now() - t0 < 3500, `found at the next PING plus the read timeout (${Date.now() - t0} ms)`);
    assert.equal(s.errors.read_timeout, 1, 'the unanswered PING dropped it');
    assert.ok(r.logs.some((l) => /PING not answered/.test(l)), r.logs.join('\n'));
    frozen = false;
    assert.equal(firstData((await udpQuery(r.port, 'q.example')).packet), '192.0.2.1', 'a new connection for the next query');
    assert.equal(s.opened, 2);
  } finally {
    await r.close();
    relay.close();
    await stub.close();
  }
});

test('dnsdist 1.7 as a second DoH server: answers over one connection, 100 concurrent queries, a wrong path fails at once', { skip: !has('dnsdist') && 'dnsdist not installed' }, async () => {
  const backend = await Stub.start({ address: '192.0.2.9' });
  const port = await freeTcpPort();
  const dd = await startDnsdist(pki, port, await freeTcpPort(), backend.port);
  const r = await startRaced([`https://dns.test@127.0.0.1:${port}`], { tlsCa: [pki.caFile], timeoutMs: 3000 });
  const wrong = await startRaced([`https://dns.test@127.0.0.1:${port}/nope`], { tlsCa: [pki.caFile], timeoutMs: 3000 });
  try {
    if (has('dig')) assert.match(await exec('dig', ['@127.0.0.1', '-p', String(r.port), 'dd.example', '+short', '+tries=1']), /^192\.0\.2\.9$/m);
    const replies = await Promise.all(Array.from({ length: 100 }, (_, i) => udpQuery(r.port, `dd${i}.example`)));
    for (const { packet } of replies) assert.equal(firstData(packet), '192.0.2.9');
    const s = doh(upstream(r, 'https://')).stats;
    assert.equal(s.opened, 1);
    assert.equal(s.handshakes, 1);
    const t0 = Date.now();
    assert.equal((await udpQuery(wrong.port, 'dd.example')).packet.rcode, 'SERVFAIL');
    assert.ok(Date.now() - t0 < 1000, `${Date.now() - t0} ms`);
    assert.equal(doh(upstream(wrong, 'https://')).stats.httpErrors.status, 1);
  } finally {
    await r.close();
    await wrong.close();
    await dd.stop();
    await backend.close();
  }
});

test('no HTTP/2, no query: a TLS server that does not negotiate h2 (no ALPN) fails the handshake; one that never answers hits the read timeout; neither delays a plain upstream', async () => {
  const live = await Stub.start({ address: '192.0.2.7' });
  // No ALPN on the server side: it would take HTTP/1.1 (or anything) after the handshake.
  const h1 = tls.createServer({ key: pki.key, cert: pki.cert }, (c) => c.on('error', () => {}));
  await new Promise<void>((res) => h1.listen(0, '127.0.0.1', res));
  const h1Port = (h1.address() as net.AddressInfo).port;
  const mute = await DohStub.start({ key: pki.key, cert: pki.cert, delayMs: 10_000 });
  const r = await startRaced([`https://dns.test@127.0.0.1:${h1Port}`, `https://dns.test@127.0.0.1:${mute.port}`, live.label], {
    tlsCa: [pki.caFile],
    tlsReadTimeoutMs: 300,
    timeoutMs: 2000,
  });
  try {
    for (let i = 0; i < 5; i++) {
      const t0 = Date.now();
      assert.equal(firstData((await udpQuery(r.port, `h${i}.example`)).packet), '192.0.2.7');
      assert.ok(Date.now() - t0 < 200, `query ${i} took ${Date.now() - t0} ms`);
    }
    await sleep(600);
    const old = doh(upstream(r, `https://dns.test@127.0.0.1:${h1Port}`)).stats;
    assert.ok(old.errors.handshake >= 1, JSON.stringify(old.errors));
    assert.equal(old.handshakes, 0, 'not counted as a working connection: no request was ever written on it');
    assert.ok(r.logs.some((l) => /does not speak HTTP\/2 \(ALPN none\)/.test(l)), r.logs.join('\n'));
    const silent = doh(upstream(r, `https://dns.test@127.0.0.1:${mute.port}`)).stats;
    assert.ok(silent.handshakes >= 1);
    assert.ok(silent.errors.read_timeout >= 1, JSON.stringify(silent.errors));
  } finally {
    await r.close();
    h1.close();
    await mute.close();
    await live.close();
  }
});

test('a server restarting in a moment: the query whose connection is refused right after a good reply tries once more and is answered', async () => {
  const first = await DohStub.start({ key: pki.key, cert: pki.cert });
  const port = first.port;
  const r = await startRaced([`https://dns.test@127.0.0.1:${port}`], { tlsCa: [pki.caFile], timeoutMs: 2000 });
  try {
    assert.equal(firstData((await udpQuery(r.port, 'a.example')).packet), '192.0.2.1');
    await first.close();
    // Once raced has seen its connection go, a query needs a new one: sent while nothing listens, the server back
    // 40 ms later, before the 100 ms retry.
    const s = doh(upstream(r, 'https://')).stats;
    const t0 = Date.now();
    while (s.closed === 0 && Date.now() - t0 < 2000) await sleep(5);
    assert.equal(s.closed, 1);
    const q = udpQuery(r.port, 'b.example');
    await sleep(40);
    const second = await DohStub.start({ key: pki.key, cert: pki.cert, port });
    try {
      assert.equal(firstData((await q).packet), '192.0.2.1');
      assert.ok(s.errors.connect >= 1, 'its first connection was refused');
    } finally {
      await second.close();
    }
  } finally {
    await r.close();
  }
});

test('without --bootstrap, an upstream name is resolved through the plain upstreams raced has', { skip: noUnbound }, async () => {
  const plain = await bootstrapStub(() => '127.0.0.1');
  const ub = await startUnbound(pki, { doh: true, forwardPort: plain.port });
  const r = await startRaced([plain.label, `https://dns.test:${ub.httpsPort}`], { tlsCa: [pki.caFile] });
  try {
    const u = upstream(r, 'https://');
    const t0 = Date.now();
    while (!u.health.up && Date.now() - t0 < 4000) await sleep(50);
    assert.ok(u.health.up, r.logs.join('\n'));
    assert.deepEqual(
      u.bootstrap!.addresses.map((e) => e.label),
      [`127.0.0.1:${ub.httpsPort}`],
    );
    assert.ok(plain.received.some((q) => q.name.toLowerCase() === 'dns.test' && q.type === 'AAAA'));
  } finally {
    await r.close();
    await ub.stop();
    await plain.close();
  }
});
