// Metrics over HTTP from a running raced, `promtool check metrics`, and
// `raced status`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { Stub } from './helpers/stub.js';
import { startRaced, udpQuery, sleep } from './helpers/client.js';
import { parseEndpoint } from '../src/net/address.js';
import { parseMetrics, bucketQuantile, type Sample } from '../src/status.js';
import { freeTcpPort } from './helpers/process.js';

const CLI = fileURLToPath(new URL('../src/main.js', import.meta.url));
const has = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const value = (s: Sample[], name: string, labels: Record<string, string> = {}): number | undefined =>
  s.find((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v))?.value;

test('metrics: wins credited to the live upstream, timeouts to the dead one, every series from the start', async () => {
  const dead = await Stub.start({ behaviour: 'drop' });
  const live = await Stub.start({ delayMs: 2 });
  const mport = await freeTcpPort();
  const r = await startRaced([dead.label, live.label], { timeoutMs: 300, metricsListen: parseEndpoint(`127.0.0.1:${mport}`, 9153) });
  await r.raced.startMetrics('test');
  try {
    const url = `http://127.0.0.1:${mport}/metrics`;
    const before = parseMetrics(await (await fetch(url)).text());
    for (const u of [dead.label, live.label]) {
      assert.equal(value(before, 'raced_upstream_wins_total', { upstream: u }), 0, `wins 0 for ${u} before traffic`);
      assert.equal(value(before, 'raced_upstream_errors_total', { upstream: u, kind: 'timeout' }), 0);
      assert.equal(value(before, 'raced_upstream_up', { upstream: u }), 1);
      for (const kind of ['nxdomain', 'nodata']) assert.equal(value(before, 'raced_upstream_overruled_total', { upstream: u, kind }), 0);
      for (const kind of ['ignored', 'rebind']) assert.equal(value(before, 'raced_upstream_errors_total', { upstream: u, kind }), 0);
    }
    assert.equal(value(before, 'raced_queries_total', { transport: 'udp', rcode: 'NOERROR' }), 0);
    assert.equal(value(before, 'raced_build_info', { version: 'test' }), 1);
    for (let i = 0; i < 5; i++) await udpQuery(r.port, `m${i}.example`);
    await sleep(400); // the dead upstream's legs reach the deadline
    const after = parseMetrics(await (await fetch(url)).text());
    assert.equal(value(after, 'raced_upstream_wins_total', { upstream: live.label }), 5);
    assert.equal(value(after, 'raced_upstream_wins_total', { upstream: dead.label }), 0);
    assert.ok(value(after, 'raced_upstream_errors_total', { upstream: dead.label, kind: 'timeout' })! >= 3);
    assert.equal(value(after, 'raced_upstream_up', { upstream: dead.label }), 0, 'marked down after 3 timeouts');
    assert.equal(value(after, 'raced_queries_total', { transport: 'udp', rcode: 'NOERROR' }), 5);
    assert.ok(value(after, 'raced_upstream_bytes_total', { upstream: live.label, direction: 'sent' })! > 0);
    assert.equal(value(after, 'raced_upstream_bytes_total', { upstream: dead.label, direction: 'received' }), 0);
    assert.equal(value(after, 'raced_race_fanout_count'), 5);
    assert.ok(value(after, 'raced_race_wasted_total')! >= 3);
    assert.equal(value(after, 'raced_request_duration_seconds_count'), 5);
    const health = await fetch(`http://127.0.0.1:${mport}/healthz`);
    assert.equal(health.status, 200);
  } finally {
    await r.close();
    await dead.close();
    await live.close();
  }
});

test('promtool check metrics accepts the exposition', { skip: !has('promtool') && 'promtool not installed (prometheus)' }, async () => {
  const up = await Stub.start();
  const mport = await freeTcpPort();
  const r = await startRaced([up.label], { cacheSize: 100, metricsListen: parseEndpoint(`127.0.0.1:${mport}`, 9153) });
  await r.raced.startMetrics('test');
  try {
    await udpQuery(r.port, 'p.example');
    await udpQuery(r.port, 'p.example');
    const text = await (await fetch(`http://127.0.0.1:${mport}/metrics`)).text();
    const res = await new Promise<{ code: number | null; out: string }>((resolve) => {
      const c = spawn('promtool', ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      c.stdout.on('data', (d: Buffer) => (out += d));
      c.stderr.on('data', (d: Buffer) => (out += d));
      c.on('exit', (code) => resolve({ code, out }));
      c.stdin.end(text);
    });
    assert.equal(res.code, 0, res.out);
    assert.equal(res.out.trim(), '', `promtool lint: ${res.out}`);
    const s = parseMetrics(text);
    assert.equal(value(s, 'raced_cache_hits_total'), 1);
    assert.equal(value(s, 'raced_cache_entries'), 1);
  } finally {
    await r.close();
    await up.close();
  }
});

test('raced status prints one line per upstream; exits non-zero when raced is not there', async () => {
  const dead = await Stub.start({ behaviour: 'drop' });
  const live = await Stub.start();
  const mport = await freeTcpPort();
  const r = await startRaced([dead.label, live.label], { timeoutMs: 300, metricsListen: parseEndpoint(`127.0.0.1:${mport}`, 9153) });
  await r.raced.startMetrics('test');
  try {
    for (let i = 0; i < 4; i++) await udpQuery(r.port, `s${i}.example`);
    await sleep(400);
    const { stdout } = await promisify(execFile)(process.execPath, [CLI, 'status', '--metrics-url', `http://127.0.0.1:${mport}/metrics`]);
    const lines = stdout.trim().split('\n');
    const liveLine = lines.find((l) => l.startsWith(live.label))!;
    const deadLine = lines.find((l) => l.startsWith(dead.label))!;
    assert.match(liveLine, /\bup\b\s+4\s+100%/);
    assert.match(deadLine, /DOWN\s+\d+\s+0%.*timeout=\d/);
    assert.match(lines.at(-1)!, /total: 4 client queries/);
    assert.ok(lines.some((l) => l.startsWith('upstream') && /overruled/.test(l)), 'an overruled column');
  } finally {
    await r.close();
    await dead.close();
    await live.close();
  }
  // The overruled column: an upstream whose NXDOMAIN a slower upstream's answer beat.
  const wrong = await Stub.start({ zone: 'corp.internal' });
  const right = await Stub.start({ delayMs: 10 });
  const r2 = await startRaced([wrong.label, right.label], { metricsListen: parseEndpoint(`127.0.0.1:${mport}`, 9153) });
  await r2.raced.startMetrics('test');
  try {
    for (let i = 0; i < 3; i++) await udpQuery(r2.port, `o${i}.example`);
    const url = `http://127.0.0.1:${mport}/metrics`;
    const m = parseMetrics(await (await fetch(url)).text());
    assert.equal(value(m, 'raced_upstream_overruled_total', { upstream: wrong.label, kind: 'nxdomain' }), 3);
    const { stdout } = await promisify(execFile)(process.execPath, [CLI, 'status', '--metrics-url', url]);
    const header = stdout.split('\n').find((l) => l.startsWith('upstream'))!;
    const line = stdout.split('\n').find((l) => l.startsWith(wrong.label))!;
    assert.equal(line.slice(header.indexOf('overruled'), header.indexOf('overruled') + 9).trim(), '3', line);
  } finally {
    await r2.close();
    await wrong.close();
    await right.close();
  }
  const gone = spawnSync(process.execPath, [CLI, 'status', '--metrics-url', `http://127.0.0.1:${mport}/metrics`], { encoding: 'utf8' });
  assert.equal(gone.status, 1);
  assert.match(gone.stderr, /cannot reach raced at http:\/\/127\.0\.0\.1:\d+\/metrics \(ECONNREFUSED\)/);
});

test('histogram quantiles interpolate inside a bucket', () => {
  const b = [
    { le: 0.001, count: 50 },
    { le: 0.01, count: 100 },
    { le: Infinity, count: 100 },
  ];
  assert.equal(bucketQuantile(b, 0.5), 0.001);
  assert.ok(Math.abs(bucketQuantile(b, 0.75) - 0.0055) < 1e-9);
  assert.ok(Number.isNaN(bucketQuantile([{ le: Infinity, count: 0 }], 0.5)));
});

test('a metrics address beyond loopback is warned about at start; loopback is not', async () => {
  const up = await Stub.start();
  for (const [host, warned] of [
    ['0.0.0.0', true],
    ['127.0.0.1', false],
  ] as const) {
    const mport = await freeTcpPort();
    const r = await startRaced([up.label], { metricsListen: parseEndpoint(`${host}:${mport}`, 9153) });
    try {
      await r.raced.startMetrics('test');
      const line = r.logs.find((l) => l.includes('reachable beyond this host'));
      if (warned) {
        assert.ok(line, `a warning for ${host}`);
        assert.match(line, /warn: /);
        assert.match(line, /firewall|reverse proxy/);
      } else {
        assert.equal(line, undefined, `no warning for ${host}`);
      }
    } finally {
      await r.close();
    }
  }
  await up.close();
});
