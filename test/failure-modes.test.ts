// Failure modes (issue 15): raced keeps answering when its log cannot be
// written, takes stream upstreams back the moment their server returns, says
// honestly when upstreams only fail, counts TTLs on the monotonic clock, and
// stops cleanly: queries in flight answered, TCP closed after the last reply.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Stub } from './helpers/stub.js';
import { startRaced, udpQuery, udpRaw, makeQuery, decode, tcpExchange, firstData, sleep, type Running } from './helpers/client.js';
import { CLI, freePort, freeTcpPort, exited, spawnRaced } from './helpers/process.js';
import { makePki, type Pki } from './helpers/dot.js';
import { startUnbound as startUnboundAt, type Unbound } from '../bench/lib/dot.js';
import { parseEndpoint } from '../src/net/address.js';
import { parseMetrics, formatStatus, type Sample } from '../src/status.js';
import { stderrIsJournal } from '../src/log.js';
import { UpstreamStats, bucketsQuantile } from '../src/upstream/stats.js';
import { FrameReader, frame } from '../src/net/framing.js';

const has = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const value = (s: Sample[], name: string, labels: Record<string, string> = {}): number | undefined =>
  s.find((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v))?.value;
const metrics = async (mport: number): Promise<Sample[]> => parseMetrics(await (await fetch(`http://127.0.0.1:${mport}/metrics`)).text());

const children: ChildProcess[] = [];
const kill = (c: ChildProcess): void => {
  if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
};

/** Waits until raced answers on UDP `port` (up to 5 s). */
async function answering(port: number, child: ChildProcess): Promise<void> {
  const t0 = Date.now();
  for (;;) {
    if (child.exitCode !== null) throw new Error(`raced exited with ${child.exitCode}`);
    if ((await udpRaw(port, makeQuery('ready.example'), 200)) !== null) return;
    if (Date.now() - t0 > 5000) throw new Error('raced did not answer');
  }
}

// ---- 1. a log that cannot be written ----

test('log on a full disk (/dev/full): raced starts, answers every query with --log-queries, counts raced_log_dropped_total', async () => {
  const up = await Stub.start();
  const port = await freePort();
  const mport = await freeTcpPort();
  const full = fs.openSync('/dev/full', 'w');
  const child = spawn(
    process.execPath,
    [CLI, '--listen', `127.0.0.1:${port}`, '--server', up.label, '--log-queries', '--log-level', 'info', '--metrics-listen', `127.0.0.1:${mport}`],
    { stdio: ['ignore', 'ignore', full] },
  );
  children.push(child);
  fs.closeSync(full);
  try {
    await answering(port, child);
    for (let i = 0; i < 100; i++) assert.equal(firstData((await udpQuery(port, `full${i}.example`)).packet), '192.0.2.1');
    assert.equal(child.exitCode, null, 'still running');
    const m = await metrics(mport);
    // Start-up lines, then two lines per query (query, reply): every one dropped.
    assert.ok(value(m, 'raced_log_dropped_total')! >= 200, `dropped ${value(m, 'raced_log_dropped_total')}`);
  } finally {
    kill(child);
    await up.close();
  }
});

test('log on a pipe whose reader exits: no crash, "upstream is down" logged into the void, all 300 queries answered', async () => {
  const good = await Stub.start();
  const dead = await Stub.start({ behaviour: 'drop' });
  const port = await freePort();
  const mport = await freeTcpPort();
  // A shell pipe (a FIFO) into `head`, which exits after its first line.
  const cmd = `exec "${process.execPath}" "${CLI}" --listen 127.0.0.1:${port} --server ${good.label} --server ${dead.label} --timeout 300 --log-queries --metrics-listen 127.0.0.1:${mport} 2>&1 >/dev/null | head -n 1 >/dev/null`;
  const child = spawn('sh', ['-c', cmd], { stdio: 'ignore', detached: true });
  children.push(child);
  try {
    await answering(port, child);
    let answered = 0;
    for (let i = 0; i < 300; i++) {
      const r = await udpRaw(port, makeQuery(`pipe${i}.example`), 2000);
      if (r !== null && decode(r).rcode === 'NOERROR') answered++;
    }
    assert.equal(answered, 300);
    await sleep(600); // the dead upstream's last legs reach their 300 ms deadline
    assert.equal(child.exitCode, null, 'still running');
    const m = await metrics(mport);
    assert.equal(value(m, 'raced_upstream_up', { upstream: dead.label }), 0, 'the dead upstream was marked down (and that logged)');
    assert.ok(value(m, 'raced_log_dropped_total')! >= 300, `dropped ${value(m, 'raced_log_dropped_total')}`);
  } finally {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // gone already
    }
    await good.close();
    await dead.close();
  }
});

test('log on a socket whose reader goes away (Node stdio pipe): raced keeps answering', async () => {
  const up = await Stub.start();
  const port = await freePort();
  const mport = await freeTcpPort();
  const { child } = await spawnRaced(['--listen', `127.0.0.1:${port}`, '--server', up.label, '--log-queries', '--metrics-listen', `127.0.0.1:${mport}`]);
  try {
    child.stderr!.destroy();
    for (let i = 0; i < 100; i++) assert.equal(firstData((await udpQuery(port, `sock${i}.example`)).packet), '192.0.2.1');
    assert.equal(child.exitCode, null);
    assert.ok(value(await metrics(mport), 'raced_log_dropped_total')! > 0);
  } finally {
    kill(child);
    await up.close();
  }
});

// ---- 8. timestamps; a reset is logged ----

test('log lines carry an ISO timestamp unless journald reads stderr (JOURNAL_STREAM names it)', async () => {
  const up = await Stub.start();
  const { child, log } = await spawnRaced(['--listen', `127.0.0.1:${await freePort()}`, '--server', up.label]);
  try {
    const line = log().split('\n').find((l) => l.includes('listening on'))!;
    assert.match(line, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z raced\[\d+\] info: listening on/);
  } finally {
    kill(child);
    await up.close();
  }
  const st = fs.fstatSync(2);
  assert.equal(stderrIsJournal({ JOURNAL_STREAM: `${st.dev}:${st.ino}` }), true);
  assert.equal(stderrIsJournal({ JOURNAL_STREAM: `${st.dev}:${st.ino + 1}` }), false);
  assert.equal(stderrIsJournal({}), false);
});

test('a reset of an established upstream connection with queries on it is logged, not only counted', async () => {
  // Closes each connection on its 3rd query, with that query unanswered.
  const up = await Stub.start({ closeAfter: 3 });
  const r = await startRaced([`tcp://${up.label}`]);
  try {
    for (let i = 0; i < 6; i++) await udpQuery(r.port, `reset${i}.example`);
    assert.ok(r.raced.upstreams[0]!.stream!.stats.errors.reset >= 1);
    assert.ok(
      r.logs.some((l) => /upstream tcp:\/\/127\.0\.0\.1:\d+: connection lost/.test(l)),
      r.logs.join('\n'),
    );
  } finally {
    await r.close();
    await up.close();
  }
});

// ---- 7. signals before anything else ----

function caught(pid: number, sig: number): boolean {
  try {
    const m = /SigCgt:\s+([0-9a-f]+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m !== null && ((BigInt('0x' + m[1]) >> BigInt(sig - 1)) & 1n) === 1n;
  } catch {
    return false;
  }
}

test('SIGHUP right after start does not kill raced: the handler is in place before raced has even started', async () => {
  const up = await Stub.start();
  const port = await freePort();
  const child = spawn(process.execPath, [CLI, '--listen', `127.0.0.1:${port}`, '--server', up.label], { stdio: ['ignore', 'ignore', 'pipe'] });
  children.push(child);
  let log = '';
  child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  try {
    const t0 = Date.now();
    while (!caught(child.pid!, 1)) {
      assert.ok(Date.now() - t0 < 10000 && child.exitCode === null, 'SIGHUP handler never installed');
      await new Promise((r) => setImmediate(r));
    }
    const listeningYet = log.includes('listening on');
    child.kill('SIGHUP');
    await answering(port, child);
    assert.equal(listeningYet, false, 'SIGHUP was caught before raced was listening');
    assert.equal(child.exitCode, null);
    // The held SIGHUP was handled once raced was up, as a reload.
    await sleep(100);
    assert.match(log, /SIGHUP: reloading upstreams/);
  } finally {
    kill(child);
    await up.close();
  }
});

test('SIGHUP from the moment any Node program could catch it, through start-up, never kills raced', async () => {
  const up = await Stub.start();
  try {
    // The floor: when an empty ES module that only installs a SIGHUP handler has it in place here and now.
    const dir = fs.mkdtempSync(join(tmpdir(), 'raced-sig-'));
    const empty = join(dir, 'empty.mjs');
    fs.writeFileSync(empty, "process.on('SIGHUP', () => {}); setTimeout(() => {}, 1000);\n");
    const floor = await handlerAfter(spawn(process.execPath, [empty], { stdio: 'ignore' }));
    fs.rmSync(dir, { recursive: true, force: true });
    for (const extra of [30, 100, 200, 300]) {
      const port = await freePort();
      const child = spawn(process.execPath, [CLI, '--listen', `127.0.0.1:${port}`, '--server', up.label], { stdio: 'ignore' });
      children.push(child);
      await sleep(floor + extra);
      child.kill('SIGHUP');
      await answering(port, child);
      assert.equal(child.exitCode, null, `SIGHUP ${floor} + ${extra} ms after spawn`);
      kill(child);
    }
  } finally {
    await up.close();
  }
});

/** Milliseconds from spawn until `child` catches SIGHUP (polled in /proc); the child is then killed. */
async function handlerAfter(child: ChildProcess): Promise<number> {
  const t0 = performance.now();
  while (!caught(child.pid!, 1)) {
    if (performance.now() - t0 > 10000) throw new Error('no SIGHUP handler');
    await new Promise((r) => setImmediate(r));
  }
  const ms = Math.ceil(performance.now() - t0);
  kill(child);
  return ms;
}

// ---- 5. monotonic TTLs (libfaketime) ----

const LIBFAKETIME = ['/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1', '/usr/lib/faketime/libfaketime.so.1'].find((p) => fs.existsSync(p));

test('a cached answer expires on time after the wall clock steps back an hour (libfaketime, monotonic clock untouched)', { skip: !LIBFAKETIME && 'libfaketime not installed (faketime)' }, async () => {
  const up = await Stub.start({ ttl: 2 });
  const port = await freePort();
  const dir = fs.mkdtempSync(join(tmpdir(), 'raced-faketime-'));
  const clock = join(dir, 'offset');
  fs.writeFileSync(clock, '+0\n');
  const child = spawn(process.execPath, [CLI, '--listen', `127.0.0.1:${port}`, '--server', up.label, '--cache-size', '100'], {
    stdio: 'ignore',
    env: {
      ...process.env,
      LD_PRELOAD: LIBFAKETIME,
      FAKETIME_TIMESTAMP_FILE: clock,
      FAKETIME_NO_CACHE: '1',
      FAKETIME_DONT_FAKE_MONOTONIC: '1',
    },
  });
  children.push(child);
  try {
    await answering(port, child);
    const ttl = (p: ReturnType<typeof decode>): number => (p.answers?.[0] as { ttl: number }).ttl;
    const first = await udpQuery(port, 'step.example');
    assert.equal(ttl(first.packet), 2);
    const asked = up.count();
    // The wall clock steps back one hour; the check that it did is a real one.
    fs.writeFileSync(clock, '-3600\n');
    const probe = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(Date.now()))'], {
      encoding: 'utf8',
      env: { ...process.env, LD_PRELOAD: LIBFAKETIME, FAKETIME_TIMESTAMP_FILE: clock, FAKETIME_NO_CACHE: '1', FAKETIME_DONT_FAKE_MONOTONIC: '1' },
    });
    assert.ok(Date.now() - Number(probe.stdout) > 3500_000, `faketime stepped the wall clock back (${probe.stdout})`);
    const hit = await udpQuery(port, 'step.example');
    assert.ok(ttl(hit.packet) <= 2, `TTL ${ttl(hit.packet)} after the step: never above what was stored`);
    assert.equal(up.count(), asked, 'still a cache hit right after the step');
    await sleep(2300);
    const after = await udpQuery(port, 'step.example');
    assert.equal(up.count(), asked + 1, 'the entry expired after its 2 s and was asked again');
    assert.equal(ttl(after.packet), 2);
  } finally {
    kill(child);
    await up.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

// ---- 2. stream upstreams back at once ----

let pki: Pki;
before(() => {
  if (has('unbound')) pki = makePki(['dns.test']);
});

interface Load {
  /** performance.now() of each query sent and whether it got NOERROR. */
  results: { sent: number; ok: boolean }[];
  stop(): Promise<void>;
}

/** A query every `everyMs` to raced on UDP, bounded in count; each waits up to 2 s. */
function load(port: number, everyMs: number, max: number): Load {
  const results: { sent: number; ok: boolean }[] = [];
  const pending: Promise<void>[] = [];
  let n = 0;
  const t = setInterval(() => {
    if (n >= max) return clearInterval(t);
    const sent = performance.now();
    const i = n++;
    pending.push(
      udpRaw(port, makeQuery(`a.local.test`, { id: i & 0xffff }), 2000).then((r) => {
        results.push({ sent, ok: r !== null && decode(r).rcode === 'NOERROR' && firstData(decode(r)) === '192.0.2.1' });
      }),
    );
  }, everyMs);
  return {
    results,
    stop: async () => {
      clearInterval(t);
      await Promise.all(pending);
    },
  };
}

test(
  'tls:// and tcp:// upstream (unbound) stopped 5 s and restarted on the same port under load: the first query after it is back is answered',
  { skip: !has('unbound') && 'unbound not installed' },
  async () => {
    const tlsPort = await freeTcpPort();
    const plainPort = await freeTcpPort();
    let ub: Unbound = await startUnboundAt(pki, { tlsPort, plainPort });
    const dot = await startRaced([`tls://dns.test@127.0.0.1:${tlsPort}`], { tlsCa: [pki.caFile], timeoutMs: 1000 });
    const tcp = await startRaced([`tcp://127.0.0.1:${plainPort}`], { timeoutMs: 1000 });
    const loads: Load[] = [];
    try {
      for (const r of [dot, tcp]) assert.equal(firstData((await udpQuery(r.port, 'a.local.test')).packet), '192.0.2.1');
      // 50 queries a second to each, at most 600 each.
      loads.push(load(dot.port, 20, 600), load(tcp.port, 20, 600));
      await sleep(500);
      await ub.stop();
      const downAt = performance.now();
      await sleep(5000);
      ub = await startUnboundAt(pki, { tlsPort, plainPort });
      // startUnbound resolves once a TLS handshake succeeds: from then on, the server is back.
      const backAt = performance.now();
      await sleep(2500);
      for (const l of loads) await l.stop();
      const report: string[] = [];
      for (const [name, l] of [['tls://', loads[0]!], ['tcp://', loads[1]!]] as const) {
        const during = l.results.filter((x) => x.sent > downAt + 100 && x.sent < downAt + 4900);
        assert.ok(during.length > 100 && during.every((x) => !x.ok), `${name}: the outage was real`);
        const after = l.results.filter((x) => x.sent >= backAt).sort((a, b) => a.sent - b.sent);
        assert.ok(after.length > 50, `${name}: load went on after the return`);
        const firstOk = after.find((x) => x.ok)!;
        const failedAfter = after.filter((x) => !x.ok).length;
        report.push(`${name} first answer ${(firstOk.sent - backAt).toFixed(0)} ms after return, ${failedAfter} failed after`);
        assert.equal(after[0]!.ok, true, `${name}: the first query after the server was back was answered (${report.at(-1)})`);
        assert.equal(failedAfter, 0, `${name}: none failed after the return (${report.at(-1)})`);
      }
      console.log(`# ${report.join('; ')}`);
    } finally {
      for (const l of loads) await l.stop();
      await dot.close();
      await tcp.close();
      await ub.stop();
    }
  },
);

// ---- 3. a --strict-order primary comes back within seconds ----

test('--strict-order: a primary back after 8 s away is used again within 2.5 s (no probe backoff)', async () => {
  const p = await Stub.start({ address: '192.0.2.1' });
  const s = await Stub.start({ address: '192.0.2.2' });
  const r = await startRaced([p.label, s.label], { strategy: 'ordered', tryTimeoutMs: 150, timeoutMs: 2000 });
  try {
    assert.equal(firstData((await udpQuery(r.port, 'o0.example')).packet), '192.0.2.1');
    p.opts.behaviour = 'drop';
    const t0 = performance.now();
    // Queries on through the outage; the primary is marked down at the first.
    while (performance.now() - t0 < 8000) {
      assert.equal(firstData((await udpQuery(r.port, `out${Math.floor(performance.now())}.example`)).packet), '192.0.2.2');
      await sleep(50);
    }
    assert.equal(r.raced.upstreams[0]!.health.up, false);
    p.opts.behaviour = 'answer';
    const back = performance.now();
    let tookMs = -1;
    for (let i = 0; i < 100 && tookMs < 0; i++) {
      const a = firstData((await udpQuery(r.port, `back${i}.example`)).packet);
      if (a === '192.0.2.1') tookMs = performance.now() - back;
      else await sleep(50);
    }
    assert.ok(tookMs >= 0 && tookMs < 2500, `primary used again ${tookMs.toFixed(0)} ms after it returned`);
  } finally {
    await r.close();
    await p.close();
    await s.close();
  }
});

// ---- 4. honest health ----

test('SERVFAIL-only upstreams: "failing" in raced status and metrics, /healthz 503; a valid answer makes it healthy again', async () => {
  const a = await Stub.start({ behaviour: 'servfail' });
  const b = await Stub.start({ behaviour: 'refused' });
  const mport = await freeTcpPort();
  const r = await startRaced([a.label, b.label], { metricsListen: parseEndpoint(`127.0.0.1:${mport}`, 9153) });
  await r.raced.startMetrics('test');
  try {
    const t0 = performance.now();
    let n = 0;
    while (performance.now() - t0 < 5600) {
      const { packet } = await udpQuery(r.port, `sf${n++}.example`);
      assert.notEqual(packet.rcode, 'NOERROR');
      await sleep(100);
    }
    const health = await fetch(`http://127.0.0.1:${mport}/healthz`);
    assert.equal(health.status, 503);
    assert.match(await health.text(), /no upstream gave a valid answer in the last 5 s/);
    const m = await metrics(mport);
    for (const u of [a.label, b.label]) {
      assert.equal(value(m, 'raced_upstream_up', { upstream: u }), 1, 'still up: it answers');
      assert.equal(value(m, 'raced_upstream_failing', { upstream: u }), 1);
    }
    assert.ok(r.logs.some((l) => l.includes(`upstream ${a.label} is failing: only SERVFAIL/REFUSED`)), r.logs.join('\n'));
    const status = formatStatus(m);
    for (const u of [a.label, b.label]) assert.match(status, new RegExp(`${u.replace(/\./g, '\\.')}\\s+failing`), status);
    a.opts.behaviour = 'answer';
    await udpQuery(r.port, 'good.example');
    assert.equal((await fetch(`http://127.0.0.1:${mport}/healthz`)).status, 200);
    const m2 = await metrics(mport);
    assert.equal(value(m2, 'raced_upstream_failing', { upstream: a.label }), 0);
    assert.match(formatStatus(m2), new RegExp(`${a.label.replace(/\./g, '\\.')}\\s+up`));
    assert.ok(r.logs.some((l) => l.includes(`upstream ${a.label} gives valid answers again`)));
  } finally {
    await r.close();
    await a.close();
    await b.close();
  }
});

test('--workers 2: /healthz of the primary is 503 while every worker sees only SERVFAIL, 200 once one gets a valid answer', async () => {
  const up = await Stub.start({ behaviour: 'servfail' });
  const port = await freePort();
  const mport = await freeTcpPort();
  const { child, log } = await spawnRaced(['--listen', `127.0.0.1:${port}`, '--server', up.label, '--workers', '2', '--metrics-listen', `127.0.0.1:${mport}`]);
  try {
    const t0 = Date.now();
    while (!log().includes('2 workers ready') && Date.now() - t0 < 5000) await sleep(20);
    const healthz = async (): Promise<[number, string]> => {
      const r = await fetch(`http://127.0.0.1:${mport}/healthz`);
      return [r.status, await r.text()];
    };
    assert.equal((await healthz())[0], 200);
    const start = performance.now();
    let n = 0;
    // From many source ports, so that both workers get queries.
    while (performance.now() - start < 5600) {
      await Promise.all([0, 1, 2, 3].map(() => udpQuery(port, `w${n++}.example`)));
      await sleep(100);
    }
    const [code, text] = await healthz();
    assert.equal(code, 503, text);
    // The workers answer the primary's metrics requests (summed): every query counted.
    const m = await metrics(mport);
    assert.equal(value(m, 'raced_upstream_queries_total', { upstream: up.label }), n);
    assert.match(text, /no upstream gave a valid answer in the last 5 s/);
    up.opts.behaviour = 'answer';
    for (let i = 0; i < 4; i++) await udpQuery(port, `ok${i}.example`);
    assert.equal((await healthz())[0], 200);
  } finally {
    kill(child);
    await up.close();
  }
});

test('last-minute window: figures from before the window are left out, totals keep them', () => {
  const st = new UpstreamStats();
  for (let i = 0; i < 100; i++) st.latency.observe(0.4); // slow, long ago
  st.wins = 100;
  st.queries = 100;
  for (let i = 0; i < 7; i++) st.recent.sample(); // a minute of snapshots: the slow ones are out of the window
  for (let i = 0; i < 50; i++) st.latency.observe(0.002);
  st.wins += 50;
  st.queries += 50;
  const w = st.recent.read();
  assert.equal(w.queries, 50);
  assert.equal(w.wins, 50);
  const p95 = bucketsQuantile(w.buckets, 0.95);
  assert.ok(p95 > 0.001 && p95 <= 0.0025, `recent p95 ${p95}`);
  assert.ok(bucketsQuantile(st.latency.buckets, 0.5) > 0.25, 'the totals still hold the slow replies');
});

test('raced status shows the last minute beside the totals', async () => {
  const up = await Stub.start();
  const mport = await freeTcpPort();
  const r = await startRaced([up.label], { metricsListen: parseEndpoint(`127.0.0.1:${mport}`, 9153) });
  await r.raced.startMetrics('test');
  try {
    for (let i = 0; i < 10; i++) await udpQuery(r.port, `st${i}.example`);
    const m = await metrics(mport);
    assert.equal(value(m, 'raced_upstream_recent_queries', { upstream: up.label }), 10);
    assert.equal(value(m, 'raced_upstream_recent_wins', { upstream: up.label }), 10);
    assert.ok(value(m, 'raced_upstream_recent_p95_seconds', { upstream: up.label })! > 0);
    const out = formatStatus(m);
    assert.match(out, /since start\s+last minute/);
    assert.match(out, new RegExp(`${up.label.replace(/\./g, '\\.')}\\s+up\\s+10\\s+100%\\s+\\S+ms\\s+\\S+ms\\s+10\\s+100%\\s+\\S+ms\\s+\\S+ms`), out);
  } finally {
    await r.close();
    await up.close();
  }
});

// ---- 6. clean shutdown ----

test('SIGTERM with TCP queries in flight: each gets its answer or SERVFAIL, then the connection closes; no false "down"', async () => {
  // fast*: 300 ms; slow*: 20 s, past the grace (5 s at most) and before raced's own --timeout 8000.
  const up = await Stub.start({ delayFor: (name) => (name.startsWith('slow') ? 20000 : 300) });
  const port = await freePort();
  const { child, log } = await spawnRaced(['--listen', `127.0.0.1:${port}`, '--server', up.label, '--timeout', '8000']);
  try {
    const sock = net.connect(port, '127.0.0.1');
    await new Promise((r) => sock.once('connect', r));
    const replies: ReturnType<typeof decode>[] = [];
    const reader = new FrameReader();
    sock.on('data', (c) => reader.push(c, (m) => replies.push(decode(Buffer.from(m)))));
    const closed = new Promise<number>((r) => sock.once('end', () => r(performance.now())));
    const names = [...Array.from({ length: 5 }, (_, i) => `fast${i}.example`), ...Array.from({ length: 5 }, (_, i) => `slow${i}.example`)];
    sock.write(Buffer.concat(names.map((n, i) => frame(makeQuery(n, { id: i + 1 })))));
    await sleep(100);
    const termAt = performance.now();
    child.kill('SIGTERM');
    await sleep(50);
    // During the drain: UDP gets REFUSED at once, a new TCP connection is refused.
    const udp = await udpQuery(port, 'during.example', {}, 1000);
    assert.equal(udp.packet.rcode, 'REFUSED');
    await assert.rejects(tcpExchange(port, [makeQuery('x.example')], 1, 1000));
    const endAt = await closed;
    const code = await exited(child);
    assert.equal(code, 0);
    assert.equal(replies.length, 10, 'every query on the connection was answered');
    for (const p of replies) {
      const name = p.questions![0]!.name;
      assert.equal(p.rcode, name.startsWith('fast') ? 'NOERROR' : 'SERVFAIL', name);
    }
    assert.ok(endAt - termAt > 4500 && endAt - termAt < 6500, `closed ${(endAt - termAt).toFixed(0)} ms after SIGTERM`);
    assert.doesNotMatch(log(), /is down/);
    sock.destroy();
  } finally {
    kill(child);
    await up.close();
  }
});

test('drain: an idle TCP connection is closed at once, a busy one right after its last reply', async () => {
  const up = await Stub.start({ delayMs: 400 });
  const r: Running = await startRaced([up.label], { timeoutMs: 3000 });
  const idle = net.connect(r.port, '127.0.0.1');
  const busy = net.connect(r.port, '127.0.0.1');
  await Promise.all([new Promise((x) => idle.once('connect', x)), new Promise((x) => busy.once('connect', x))]);
  const got: Buffer[] = [];
  const reader = new FrameReader();
  busy.on('data', (c) => reader.push(c, (m) => got.push(Buffer.from(m))));
  busy.write(frame(makeQuery('busy.example', { id: 7 })));
  await sleep(50);
  const t0 = performance.now();
  const idleEnd = new Promise<number>((x) => idle.once('end', () => x(performance.now() - t0)));
  const busyEnd = new Promise<number>((x) => busy.once('end', () => x(performance.now() - t0)));
  const stopped = r.raced.stop(3000);
  const [i, b] = await Promise.all([idleEnd, busyEnd]);
  await stopped;
  assert.ok(i < 100, `idle closed after ${i.toFixed(0)} ms`);
  assert.ok(b >= 300 && b < 1500, `busy closed after ${b.toFixed(0)} ms, after its reply`);
  assert.equal(got.length, 1);
  assert.equal(firstData(decode(got[0]!)), '192.0.2.1');
  idle.destroy();
  busy.destroy();
  await up.close();
});

// ---- 9. raced's own EDNS size ----

test('--edns-packet-max 512: replies over TCP and UDP advertise udp 512, not the upstream\'s size', { skip: !has('unbound') && 'unbound not installed' }, async () => {
  const tlsPort = await freeTcpPort();
  const plainPort = await freeTcpPort();
  const ub = await startUnboundAt(pki, { tlsPort, plainPort });
  const r = await startRaced([`127.0.0.1:${plainPort}`], { ednsPacketMax: 512, cacheSize: 100 });
  try {
    const size = (raw: Buffer): number | undefined =>
      (decode(raw).additionals?.find((a) => a.type === 'OPT') as { udpPayloadSize?: number } | undefined)?.udpPayloadSize;
    // unbound itself says 1232.
    const direct = await udpRaw(plainPort, makeQuery('a.local.test', { edns: 1232 }));
    assert.equal(size(direct!), 1232);
    const [overTcp] = await tcpExchange(r.port, [makeQuery('a.local.test', { edns: 4096 })], 1);
    assert.equal(size(overTcp!), 512);
    const cached = await tcpExchange(r.port, [makeQuery('a.local.test', { edns: 1232 })], 1);
    assert.equal(size(cached[0]!), 512, 'a cache hit too');
    const overUdp = await udpQuery(r.port, 'a.local.test', { edns: 4096 });
    assert.equal(size(overUdp.raw), 512);
  } finally {
    await r.close();
    await ub.stop();
  }
});

process.on('exit', () => {
  for (const c of children) kill(c);
});
