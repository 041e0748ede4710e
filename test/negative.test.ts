// Issue 16: a valid answer is a right answer. Negative answers wait for
// agreement (bounded), blocked and bogus answers lose, rebinding is refused,
// and raced's own failures carry Extended DNS Errors (checked with dig).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import dnsPacket from 'dns-packet';
import { Stub, type StubOptions } from './helpers/stub.js';
import { startRaced, udpQuery, firstData, makeQuery, decode, sleep, type Running } from './helpers/client.js';
import type { Options } from '../src/config/options.js';
import { Pipeline } from '../src/pipeline.js';
import type { Client } from '../src/client.js';
import { Router } from '../src/router.js';
import { allStrategy } from '../src/strategy/all.js';
import { Logger } from '../src/log.js';

const stubs: Stub[] = [];
async function stub(o: StubOptions = {}): Promise<Stub> {
  const s = await Stub.start(o);
  stubs.push(s);
  return s;
}
after(async () => {
  for (const s of stubs) await s.close();
});

const exec = async (cmd: string, args: string[]): Promise<string> => (await promisify(execFile)(cmd, args, { encoding: 'utf8', timeout: 20000 })).stdout;
const hasDig = spawnSync('sh', ['-c', 'command -v dig']).status === 0;

async function withRaced(servers: Stub[], over: Partial<Options>, fn: (r: Running) => Promise<void>): Promise<void> {
  const r = await startRaced(
    servers.map((s) => s.label),
    over,
  );
  try {
    await fn(r);
  } finally {
    await r.close();
  }
}

async function timed<T>(p: Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const v = await p;
  return [v, performance.now() - t0];
}

/** Answers only names under `zone` (NXDOMAIN for the rest): a split-horizon or filtering upstream. */
const splitHorizon = (zone: string, o: StubOptions = {}): Promise<Stub> => stub({ zone, ...o });

test('a fast NXDOMAIN loses to a slower positive answer; the wrong upstream is counted as overruled', async () => {
  const wrong = await splitHorizon('corp.internal');
  const right = await stub({ address: '192.0.2.50', delayMs: 25 });
  await withRaced([wrong, right], {}, async (r) => {
    for (let i = 0; i < 5; i++) {
      const { packet } = await udpQuery(r.port, `known${i}.example`);
      assert.equal(packet.rcode, 'NOERROR');
      assert.equal(firstData(packet), '192.0.2.50');
    }
    const [w, g] = r.raced.upstreams;
    assert.equal(w!.stats.overruled.nxdomain, 5);
    assert.equal(w!.stats.overruled.nodata, 0);
    assert.equal(g!.stats.overruled.nxdomain, 0);
    assert.equal(g!.stats.wins, 5);
    const line = r.logs.find((l) => l.includes('overruled: known0.example. A'));
    assert.ok(line, 'a debug line names the query');
    assert.ok(line.includes(wrong.label) && line.includes(right.label), `both upstreams named: ${line}`);
  });
});

test('--negative-grace 0: the first valid answer wins, NXDOMAIN included', async () => {
  const wrong = await splitHorizon('corp.internal');
  const right = await stub({ address: '192.0.2.51', delayMs: 25 });
  await withRaced([wrong, right], { negativeGraceMs: 0 }, async (r) => {
    const { packet } = await udpQuery(r.port, 'known.example');
    assert.equal(packet.rcode, 'NXDOMAIN', 'not held: a held NXDOMAIN would lose to the positive answer');
  });
});

test('two agreeing NXDOMAINs are answered when the second arrives, not at the grace', async () => {
  const a = await stub();
  const b = await stub({ delayMs: 40 });
  const dead = await stub({ behaviour: 'drop' });
  // Grace and deadline 60 s: an answer within the client's 5 s came from agreement.
  await withRaced([a, b, dead], { negativeGraceMs: 60_000, timeoutMs: 60_000 }, async (r) => {
    const [{ packet }, ms] = await timed(udpQuery(r.port, 'nx-agree.example'));
    assert.equal(packet.rcode, 'NXDOMAIN');
    assert.ok(ms >= 35, `waited for the second upstream (${ms.toFixed(1)} ms)`);
    assert.equal(r.raced.upstreams[0]!.stats.overruled.nxdomain, 0);
  });
});

test('AAAA NODATA: agreement of two upstreams answers at the second one, a third slow one is not awaited', async () => {
  const v4only = (name: string, type: string): dnsPacket.Answer[] => (type === 'A' ? [{ name, type: 'A', ttl: 60, data: '192.0.2.52' }] : []);
  const a = await stub({ answers: v4only });
  const b = await stub({ answers: v4only, delayMs: 20 });
  const slow = await stub({ answers: v4only, delayMs: 400 });
  await withRaced([a, b, slow], {}, async (r) => {
    const [{ packet }, ms] = await timed(udpQuery(r.port, 'v4only.example', { type: 'AAAA' }));
    assert.equal(packet.rcode, 'NOERROR');
    assert.equal(packet.answers!.length, 0);
    assert.ok(ms >= 15, `answered at the second upstream's reply (${ms.toFixed(1)} ms)`);
    assert.equal(r.raced.upstreams[2]!.stats.latency.count, 0, 'before the slow one replied');
    const { packet: p4 } = await udpQuery(r.port, 'v4only.example', { type: 'A' });
    assert.equal(firstData(p4), '192.0.2.52');
  });
});

test('a lone NXDOMAIN beside a dead upstream waits a bounded grace, not the query deadline', async () => {
  const nx = await stub();
  const dead = await stub({ behaviour: 'drop' });
  // A 60 s deadline: an answer within the client's 5 s came from the bounded grace (its exact length: race-rule.test.ts).
  await withRaced([nx, dead], { timeoutMs: 60_000 }, async (r) => {
    const [{ packet }, ms] = await timed(udpQuery(r.port, 'nx-lone.example'));
    assert.equal(packet.rcode, 'NXDOMAIN');
    assert.ok(ms >= 90, `held for the grace (${ms.toFixed(1)} ms)`);
    // Asked for longer than the cap and never answered: no longer waited for, long before it is marked down.
    const [{ packet: p2 }, ms2] = await timed(udpQuery(r.port, 'nx-lone2.example'));
    assert.equal(p2.rcode, 'NXDOMAIN');
    assert.ok(ms2 < ms, `a silent upstream is not waited for again (${ms2.toFixed(1)} ms, the first ${ms.toFixed(1)} ms)`);
    assert.equal(r.raced.upstreams[1]!.health.up, true, 'not yet marked down: the grace rule alone did it');
  });
  // An upstream whose port is closed fails at once (ICMP): the negative answer is then the last word.
  const closed = await stub();
  const closedLabel = closed.label;
  await closed.close();
  stubs.splice(stubs.indexOf(closed), 1);
  // Grace and deadline 60 s: an answer within the client's 5 s means the failed leg ended the wait.
  const r = await startRaced([nx.label, closedLabel], { timeoutMs: 60_000, negativeGraceMs: 60_000 });
  try {
    const { packet } = await udpQuery(r.port, 'nx-icmp.example');
    assert.equal(packet.rcode, 'NXDOMAIN');
    assert.ok(r.raced.upstreams[1]!.stats.errors.network >= 1, 'the other leg failed outright');
  } finally {
    await r.close();
  }
});

test('the derived grace follows the pending upstream\'s measured latency', async () => {
  const nx = await splitHorizon('corp.internal');
  const other = await stub({ address: '192.0.2.53', delayMs: 10 });
  await withRaced([nx, other], {}, async (r) => {
    // Warm the other upstream's latency ring with answers it gives in ~10 ms.
    for (let i = 0; i < 5; i++) await udpQuery(r.port, `warm${i}.example`);
    other.opts.behaviour = 'drop';
    const [{ packet }, ms] = await timed(udpQuery(r.port, 'gone.example'));
    assert.equal(packet.rcode, 'NXDOMAIN');
    assert.ok(ms < 60, `waited about the other upstream's p95, not the 100 ms cap (${ms.toFixed(1)} ms)`);
  });
});

test('a CNAME whose target has no record of the type is NODATA; a complete chain wins at once', async () => {
  const broken = await stub({ answers: (name) => [{ name, type: 'CNAME', ttl: 60, data: 'target.example' }] });
  const full = await stub({
    delayMs: 30,
    answers: (name) => [
      { name, type: 'CNAME', ttl: 60, data: 'target.example' },
      { name: 'target.example', type: 'A', ttl: 60, data: '192.0.2.54' },
    ],
  });
  await withRaced([broken, full], {}, async (r) => {
    const { packet } = await udpQuery(r.port, 'www.example');
    assert.equal(firstData(packet), '192.0.2.54');
    assert.equal(r.raced.upstreams[0]!.stats.overruled.nodata, 1);
  });
  const fastFull = await stub({ answers: full.opts.answers });
  const slowBroken = await stub({ answers: broken.opts.answers, delayMs: 300 });
  // A 60 s grace: a held answer would have waited for the slow one's reply.
  await withRaced([fastFull, slowBroken], { negativeGraceMs: 60_000 }, async (r) => {
    const { packet } = await udpQuery(r.port, 'www.example');
    assert.equal(firstData(packet), '192.0.2.54');
    assert.equal(r.raced.upstreams[1]!.stats.latency.count, 0, 'a positive answer through a CNAME is not held: answered before the slow one replied');
    await sleep(350);
    assert.equal(r.raced.upstreams[1]!.stats.overruled.nodata, 1, 'a negative after the positive won is overruled too');
  });
});

test('--ignore-address 0.0.0.0: a filtering upstream loses, the later good reply wins', async () => {
  const filter = await stub({ address: '0.0.0.0' });
  const good = await stub({ address: '192.0.2.55', delayMs: 20 });
  const cidr = (await import('../src/net/address.js')).parseCidr;
  await withRaced([filter, good], { ignoreAddress: [cidr('0.0.0.0'), cidr('::')] }, async (r) => {
    const { packet } = await udpQuery(r.port, 'ads.example');
    assert.equal(firstData(packet), '192.0.2.55');
    assert.equal(r.raced.upstreams[0]!.stats.errors.ignored, 1);
  });
  await withRaced([filter, good], {}, async (r) => {
    const { packet } = await udpQuery(r.port, 'ads.example');
    assert.equal(firstData(packet), '0.0.0.0', 'without the flag the fast 0.0.0.0 wins');
  });
});

test('--bogus-nxdomain: an ad-page address becomes NXDOMAIN', async () => {
  const isp = await stub({ address: '198.51.100.99' });
  const cidr = (await import('../src/net/address.js')).parseCidr;
  await withRaced([isp], { bogusNxdomain: [cidr('198.51.100.0/24')] }, async (r) => {
    const { packet } = await udpQuery(r.port, 'typo.example', { edns: true });
    assert.equal(packet.rcode, 'NXDOMAIN');
    assert.equal(packet.answers!.length, 0);
  });
});

test('--stop-dns-rebind: a private address for a public name is refused with EDE 15; exceptions pass', { skip: !hasDig && 'dig not installed' }, async () => {
  const evil = await stub({ address: '192.168.1.10' });
  const cidr = await stub({ answers: (name) => [{ name, type: 'AAAA', ttl: 60, data: 'fd00::5' }] });
  const loop = await stub({ address: '127.0.0.1' });
  await withRaced([evil], { stopDnsRebind: true, rebindDomainOk: ['lan'] }, async (r) => {
    const out = await exec('dig', ['@127.0.0.1', '-p', String(r.port), 'A', 'rebind.example', '+tries=1']);
    assert.match(out, /status: REFUSED/);
    assert.match(out, /EDE: 15 \(Blocked\)/);
    assert.equal(r.raced.upstreams[0]!.stats.errors.rebind, 1);
    const ok = await exec('dig', ['@127.0.0.1', '-p', String(r.port), 'A', 'printer.lan', '+tries=1', '+short']);
    assert.equal(ok.trim(), '192.168.1.10', '--rebind-domain-ok lets a local domain through');
  });
  await withRaced([cidr], { stopDnsRebind: true }, async (r) => {
    const { packet } = await udpQuery(r.port, 'ula.example', { type: 'AAAA' });
    assert.equal(packet.rcode, 'REFUSED');
  });
  await withRaced([loop], { stopDnsRebind: true, rebindLocalhostOk: true }, async (r) => {
    const { packet } = await udpQuery(r.port, 'loop.example');
    assert.equal(firstData(packet), '127.0.0.1');
  });
  await withRaced([evil], {}, async (r) => {
    const { packet } = await udpQuery(r.port, 'rebind.example');
    assert.equal(firstData(packet), '192.168.1.10', 'off by default, as in dnsmasq');
  });
});

const dig = (port: number, name: string, ...extra: string[]): Promise<string> => exec('dig', ['@127.0.0.1', '-p', String(port), name, '+tries=1', '+time=5', ...extra]);

test('EDE 22 at the deadline, EDE 23 when every upstream is unreachable; none without EDNS', { skip: !hasDig && 'dig not installed' }, async () => {
  const dead = await stub({ behaviour: 'drop' });
  await withRaced([dead], { timeoutMs: 300 }, async (r) => {
    const out = await dig(r.port, 'slow.example');
    assert.match(out, /status: SERVFAIL/);
    assert.match(out, /EDE: 22 \(No Reachable Authority\): \(no upstream answered in time\)/);
    const plain = await dig(r.port, 'slow.example', '+noedns');
    assert.match(plain, /status: SERVFAIL/);
    assert.doesNotMatch(plain, /OPT PSEUDOSECTION|EDE/);
  });
  const closed = await stub();
  const label = closed.label;
  await closed.close();
  stubs.splice(stubs.indexOf(closed), 1);
  const r = await startRaced([label], { timeoutMs: 3000 });
  try {
    const out = await dig(r.port, 'unreachable.example');
    assert.match(out, /status: SERVFAIL/);
    assert.match(out, /EDE: 23 \(Network Error\)/);
  } finally {
    await r.close();
  }
  // Upstreams that say SERVFAIL themselves: raced relays the RCODE and invents no code.
  const sf = await stub({ behaviour: 'servfail' });
  await withRaced([sf], {}, async (r2) => {
    const out = await dig(r2.port, 'sf.example');
    assert.match(out, /status: SERVFAIL/);
    assert.doesNotMatch(out, /EDE/);
  });
});

test('EDE 3 on a stale answer, EDE 19 on a stale NXDOMAIN', { skip: !hasDig && 'dig not installed' }, async () => {
  const up = await stub({ ttl: 1, address: '192.0.2.56' });
  await withRaced([up], { cacheSize: 100, serveStale: 3600, negTtl: 1 }, async (r) => {
    await udpQuery(r.port, 'stale.example');
    await udpQuery(r.port, 'nx-nosoa-stale.example');
    up.opts.behaviour = 'servfail';
    await sleep(1100);
    const a = await dig(r.port, 'stale.example');
    assert.match(a, /stale\.example\.\s+30\s+IN\s+A\s+192\.0\.2\.56/);
    assert.match(a, /EDE: 3 \(Stale Answer\)/);
    const nx = await dig(r.port, 'nx-nosoa-stale.example');
    assert.match(nx, /status: NXDOMAIN/);
    assert.match(nx, /EDE: 19 \(Stale NXDOMAIN Answer\)/);
    const plain = await dig(r.port, 'stale.example', '+noedns');
    assert.doesNotMatch(plain, /EDE/);
  });
});

test("an upstream's own EDE reaches the client in the winning reply", { skip: !hasDig && 'dig not installed' }, async () => {
  // A filtering upstream: NOERROR, 0.0.0.0 and EDE 17 (Filtered).
  const sock = dgram.createSocket('udp4');
  await new Promise<void>((res) => sock.bind(0, '127.0.0.1', res));
  sock.on('message', (msg, from) => {
    const q = dnsPacket.decode(msg);
    const out = dnsPacket.encode({
      type: 'response',
      id: q.id,
      flags: dnsPacket.RECURSION_AVAILABLE | dnsPacket.RECURSION_DESIRED,
      questions: q.questions,
      answers: [{ name: q.questions![0]!.name, type: 'A', ttl: 60, data: '0.0.0.0' }],
      additionals: [{ name: '.', type: 'OPT', udpPayloadSize: 1232, flags: 0, options: [{ code: 15, data: Buffer.from([0, 17, ...Buffer.from('blocked by list')]) }] } as unknown as dnsPacket.Answer],
    } as dnsPacket.Packet);
    sock.send(out, from.port, from.address);
  });
  const r = await startRaced([`127.0.0.1:${sock.address().port}`]);
  try {
    const out = await dig(r.port, 'tracker.example');
    assert.match(out, /EDE: 17 \(Filtered\): \(blocked by list\)/);
  } finally {
    await r.close();
    sock.close();
  }
});

test('EDE 18 on REFUSED for a client outside the allow-list (EDNS clients only)', async () => {
  const p = new Pipeline({ timeoutMs: 500, forwardMax: 10, allow: [], ednsPacketMax: 1232, logQueries: false, staleAfterMs: 1800 }, new Router(), allStrategy, null, new Logger('error'));
  const replies: Buffer[] = [];
  const client: Client = { transport: 'udp', address: '192.0.2.200', port: 5353, respond: (b) => replies.push(b) };
  p.handle(makeQuery('far.example', { edns: true }), client);
  p.handle(makeQuery('far.example'), client);
  const withEdns = decode(replies[0]!);
  assert.equal(withEdns.rcode, 'REFUSED');
  const opt = withEdns.additionals!.find((a) => a.type === 'OPT') as unknown as { options: { code: number; data: Buffer }[] };
  const ede = opt.options.find((o) => o.code === 15)!;
  assert.equal(ede.data.readUInt16BE(0), 18);
  assert.equal(ede.data.subarray(2).toString(), 'client not allowed');
  const without = decode(replies[1]!);
  assert.equal(without.rcode, 'REFUSED');
  assert.equal(without.additionals!.length, 0);
});

test('the flags through the real command: env RACED_NEGATIVE_GRACE, conf-file ignore-address/bogus-nxdomain/stop-dns-rebind; bad values exit 2', async () => {
  const { CLI, freePort, spawnRaced } = await import('./helpers/process.js');
  const { mkdtempSync, writeFileSync } = await import('node:fs');
  const { join } = await import('node:path');
  const { tmpdir } = await import('node:os');
  const filter = await stub({ answers: (name) => (name.startsWith('ad') ? [{ name, type: 'A', ttl: 60, data: '0.0.0.0' }] : name.startsWith('isp') ? [{ name, type: 'A', ttl: 60, data: '198.51.100.7' }] : [{ name, type: 'A', ttl: 60, data: '10.1.2.3' }]) });
  const good = await stub({ address: '192.0.2.57', delayMs: 30 });
  const port = await freePort();
  const conf = join(mkdtempSync(join(tmpdir(), 'raced-neg-')), 'raced.conf');
  writeFileSync(conf, `server=${filter.label}\nignore-address=0.0.0.0\nbogus-nxdomain=198.51.100.0/24\nstop-dns-rebind\nrebind-domain-ok=/home.arpa/\nnegative-grace=0\n`);
  const { child } = await spawnRaced(['--conf-file', conf, '--listen', `127.0.0.1:${port}`, '--server', filter.label, '--server', good.label, '--cache-size', '0'], { RACED_NEGATIVE_GRACE: '500' });
  try {
    assert.equal(firstData((await udpQuery(port, 'ad.example')).packet), '192.0.2.57', 'ignored 0.0.0.0 from the conf file');
    assert.equal(firstData((await udpQuery(port, 'rebind.example')).packet), '192.0.2.57', 'the private answer was refused, the public one won');
    // The bogus NXDOMAIN is held: the environment's 500 ms grace beats the file's 0.
    const [{ packet }] = await timed(udpQuery(port, 'isp-typo.example'));
    assert.equal(firstData(packet), '192.0.2.57');
    assert.equal((await udpQuery(port, 'nas.home.arpa')).packet.rcode, 'NOERROR');
    assert.equal(firstData((await udpQuery(port, 'nas.home.arpa')).packet), '10.1.2.3');
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
  for (const [args, re] of [
    [['--negative-grace', 'soon'], /--negative-grace.*soon/],
    [['--ignore-address', '0.0.0.0/40'], /--ignore-address.*0\.0\.0\.0\/40/],
    [['--bogus-nxdomain', 'nowhere'], /--bogus-nxdomain.*nowhere/],
    [['--rebind-domain-ok', '/bad domain!/'], /--rebind-domain-ok/],
  ] as [string[], RegExp][]) {
    const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 10000 });
    assert.equal(r.status, 2, args.join(' '));
    assert.match(r.stderr.trim(), re);
  }
  const help = spawnSync(process.execPath, [CLI, '--help'], { encoding: 'utf8' }).stdout;
  for (const f of ['--negative-grace', '--ignore-address', '--bogus-nxdomain', '--stop-dns-rebind', '--rebind-localhost-ok', '--rebind-domain-ok', 'RACED_NEGATIVE_GRACE']) assert.ok(help.includes(f), f);
});

test('hedged fires its hedge at once on a negative answer; ordered lets the one upstream asked have the last word', async () => {
  const wrong = await splitHorizon('corp.internal');
  const right = await stub({ address: '192.0.2.58', delayMs: 20 });
  // A hedge delay longer than the deadline: the right answer can only come from a hedge sent on the NXDOMAIN.
  await withRaced([wrong, right], { strategy: 'hedged', hedgeDelayMs: 60_000, timeoutMs: 3000 }, async (r) => {
    const { packet } = await udpQuery(r.port, 'hedge-neg.example');
    assert.equal(firstData(packet), '192.0.2.58');
    assert.equal(right.count(), 1);
    assert.equal(r.raced.upstreams[0]!.stats.overruled.nxdomain, 1);
  });
  right.reset();
  wrong.reset();
  // Grace, try timeout and deadline 60 s: an answer within the client's 5 s was not held.
  await withRaced([wrong, right], { strategy: 'ordered', negativeGraceMs: 60_000, tryTimeoutMs: 60_000, timeoutMs: 60_000 }, async (r) => {
    const { packet } = await udpQuery(r.port, 'ordered-neg.example');
    assert.equal(packet.rcode, 'NXDOMAIN');
    assert.equal(right.count(), 0, 'the next upstream is not asked');
  });
});

const hasUnshare = spawnSync('unshare', ['-rn', 'true']).status === 0;
test('EDE 18 with dig: a client outside the allow-list, in a network namespace of its own', { skip: (!hasDig || !hasUnshare) && 'dig or unshare -rn not available' }, async () => {
  const { CLI } = await import('./helpers/process.js');
  // Inside a fresh namespace: 198.18.0.1 on lo is not loopback to raced; dig speaks from it.
  const script = [
    'ip link set lo up && ip addr add 198.18.0.1/32 dev lo || exit 3',
    `"${process.execPath}" "${CLI}" --listen 198.18.0.1:5300 --server 127.0.0.1:9 --no-resolv --cache-size 0 --log-level error & pid=$!`,
    'for i in $(seq 1 50); do dig -b 198.18.0.1 @198.18.0.1 -p 5300 +tries=1 +time=1 probe.example >/dev/null 2>&1 && break; sleep 0.1; done',
    'echo "=== edns"; dig -b 198.18.0.1 @198.18.0.1 -p 5300 +tries=1 +time=2 far.example',
    'echo "=== noedns"; dig -b 198.18.0.1 @198.18.0.1 -p 5300 +tries=1 +time=2 +noedns far.example',
    'kill $pid; wait $pid',
  ].join('\n');
  const out = await exec('unshare', ['-rn', 'sh', '-c', script]);
  const [withEdns, without] = out.split('=== noedns');
  assert.match(withEdns!, /status: REFUSED/);
  assert.match(withEdns!, /EDE: 18 \(Prohibited\): \(client not allowed\)/);
  assert.match(without!, /status: REFUSED/);
  assert.doesNotMatch(without!, /EDE|OPT PSEUDOSECTION/);
});

test('coalesced clients and the cache see only the winning answer, never the held negative', async () => {
  const wrong = await splitHorizon('corp.internal');
  const right = await stub({ address: '192.0.2.59', delayMs: 30 });
  await withRaced([wrong, right], { cacheSize: 100 }, async (r) => {
    const answers = await Promise.all([0, 5, 10].map(async (d) => {
      await sleep(d);
      return (await udpQuery(r.port, 'shared.example')).packet;
    }));
    for (const p of answers) assert.equal(firstData(p), '192.0.2.59');
    assert.equal(wrong.count() + right.count(), 2, 'one race for the three clients');
    const again = await udpQuery(r.port, 'shared.example');
    assert.equal(firstData(again.packet), '192.0.2.59');
    assert.equal(wrong.count() + right.count(), 2, 'answered from the cache');
  });
});

test('RACED_IGNORE_ADDRESS and RACED_STOP_DNS_REBIND from the environment', async () => {
  const { freePort, spawnRaced } = await import('./helpers/process.js');
  const filter = await stub({ address: '0.0.0.0' });
  const lan = await stub({ address: '192.168.7.7', delayMs: 10 });
  const good = await stub({ address: '192.0.2.60', delayMs: 40 });
  const port = await freePort();
  const { child } = await spawnRaced(['--listen', `127.0.0.1:${port}`, '--server', filter.label, '--server', lan.label, '--server', good.label, '--cache-size', '0'], {
    RACED_IGNORE_ADDRESS: '0.0.0.0/32,::',
    RACED_STOP_DNS_REBIND: 'yes',
  });
  try {
    assert.equal(firstData((await udpQuery(port, 'env.example')).packet), '192.0.2.60');
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
});
