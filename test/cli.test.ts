// The raced command as a user runs it: flags, environment, errors, signals.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Stub } from './helpers/stub.js';
import { udpQuery, firstData, sleep, tcpExchange, makeQuery, decode } from './helpers/client.js';
import { hasReusePort } from '../src/workers.js';
import { CLI, exited, freePort, spawnRaced } from './helpers/process.js';

const dir = mkdtempSync(join(tmpdir(), 'raced-cli-'));
function run(args: string[], env: Record<string, string> = {}): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 10000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}


test('--help lists every flag with its environment variable', () => {
  const r = run(['--help']);
  assert.equal(r.status, 0);
  for (const s of ['--listen', '--server', '--all-servers', '--strict-order', '--timeout', '--cache-size', '--log-queries', '--log-level', '--dns-forward-max', '--allow', '--no-resolv', '--resolv-file']) {
    assert.ok(r.stdout.includes(s), `help mentions ${s}`);
  }
  assert.ok(r.stdout.includes('RACED_LISTEN'));
  assert.ok(r.stdout.includes('RACED_DNS_FORWARD_MAX'));
});

const bad: [string[], Record<string, string>, RegExp][] = [
  [['--listen', '127.0.0.1:70000'], {}, /--listen.*70000/],
  [['--listen', 'nowhere'], {}, /--listen.*nowhere/],
  [['--server', '300.1.1.1'], {}, /--server.*300\.1\.1\.1/],
  [['--cache-size', '-1'], {}, /--cache-size.*-1/],
  [['--strategy', 'fastestest'], {}, /--strategy.*fastestest/],
  [['--timeout', 'soon'], {}, /--timeout.*soon/],
  [['--log-level', 'loud'], {}, /--log-level.*loud/],
  [['--allow', '10.0.0.0/99'], {}, /--allow.*10\.0\.0\.0\/99/],
  [[], { RACED_CACHE_SIZE: '-5' }, /RACED_CACHE_SIZE|--cache-size.*-5/],
  [[], { RACED_LOG_QUERIES: 'maybe' }, /RACED_LOG_QUERIES.*maybe/],
  [['--frobnicate'], {}, /--frobnicate/],
  [['--strategy', 'auto', '--server', '192.0.2.1'], {}, /--strategy auto needs --latency-target/],
  [['--explore-share', '150%'], {}, /--explore-share.*150%/],
  [[], { RACED_EXPLORE_SHARE: 'lots' }, /RACED_EXPLORE_SHARE|--explore-share.*lots/],
  [['--race-width', '0'], {}, /--race-width.*0/],
];
for (const [args, env, re] of bad) {
  test(`bad value exits 2 with one line: ${args.join(' ') || JSON.stringify(env)}`, () => {
    const r = run(args, env);
    assert.equal(r.status, 2);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, re);
  });
}

test('no upstream left (only raced itself): exits with a clear error', () => {
  const rc = join(dir, 'self.conf');
  writeFileSync(rc, 'nameserver 127.0.0.1\n');
  const r = run(['--listen', '127.0.0.1:53', '--resolv-file', rc]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /skipping upstream 127\.0\.0\.1:53.*own listen address/);
  assert.match(r.stderr, /no upstream servers left/);
  const r2 = run(['--listen', '127.0.0.1:5399', '--no-resolv']);
  assert.equal(r2.status, 1);
  assert.match(r2.stderr, /no upstream servers/);
});

const NOBODY = ['--reuid=65534', '--regid=65534', '--clear-groups'];
function nobodyCanRun(): boolean | string {
  if (process.getuid?.() !== 0) return 'needs root to drop to nobody';
  const r = spawnSync('setpriv', [...NOBODY, process.execPath, '-e', `require('fs').accessSync(${JSON.stringify(CLI)})`]);
  return r.status === 0 ? false : 'the checkout is not readable by nobody';
}

test('not root and port 53: the error says how to fix it', { skip: nobodyCanRun() }, () => {
  const r = spawnSync('setpriv', [...NOBODY, process.execPath, CLI, '--listen', '127.0.0.1:53', '--server', '127.0.0.1:5353'], {
    encoding: 'utf8',
    timeout: 10000,
  });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /permission denied/);
  assert.match(r.stderr, /CAP_NET_BIND_SERVICE/);
  assert.match(r.stderr, /--listen 127\.0\.0\.1:5353/);
  // Never setcap on node: that would let every Node program on the host bind low ports.
  assert.doesNotMatch(r.stderr, /setcap/);
  assert.match(r.stderr, /systemd unit|socket activation/);
});

test('flags win over RACED_* variables, variables over defaults', async () => {
  const up = await Stub.start({ address: '192.0.2.7' });
  const p1 = await freePort();
  const p2 = await freePort();
  try {
    const { child } = await spawnRaced(['--listen', `127.0.0.1:${p2}`], { RACED_LISTEN: `127.0.0.1:${p1}`, RACED_SERVER: up.label, RACED_NO_RESOLV: '1' });
    assert.equal(firstData((await udpQuery(p2, 'flag.example')).packet), '192.0.2.7');
    await assert.rejects(udpQuery(p1, 'env.example', {}, 300));
    child.kill('SIGTERM');
    assert.equal(await exited(child), 0);
    const second = await spawnRaced([], { RACED_LISTEN: `127.0.0.1:${p1}`, RACED_SERVER: up.label });
    assert.equal(firstData((await udpQuery(p1, 'env.example')).packet), '192.0.2.7');
    second.child.kill('SIGTERM');
    assert.equal(await exited(second.child), 0);
  } finally {
    await up.close();
  }
});

test('top-k from the conf-file, its width from the environment, the explore share from a flag', async () => {
  const ups = await Promise.all([1, 2, 3].map((i) => Stub.start({ address: `192.0.2.${i}`, delayMs: i })));
  const port = await freePort();
  const conf = join(dir, 'topk.conf');
  writeFileSync(conf, 'strategy=top-k\nrace-width=1\nexplore-share=50%\n');
  const sent = (): number => ups.reduce((a, u) => a + u.received.length, 0);
  try {
    const one = await spawnRaced(['--conf-file', conf, '--listen', `127.0.0.1:${port}`, '--no-resolv', '--cache-size', '0', '--explore-share', '0', ...ups.map((u) => `--server=${u.label}`)]);
    for (let i = 0; i < 10; i++) await udpQuery(port, `k${i}.example`);
    assert.equal(sent(), 10, 'race-width=1 from the file: one upstream query per client query');
    one.child.kill('SIGTERM');
    assert.equal(await exited(one.child), 0);
    const before = sent();
    const two = await spawnRaced(['--conf-file', conf, '--listen', `127.0.0.1:${port}`, '--no-resolv', '--cache-size', '0', '--explore-share', '0', ...ups.map((u) => `--server=${u.label}`)], { RACED_RACE_WIDTH: '2' });
    for (let i = 0; i < 10; i++) await udpQuery(port, `w${i}.example`);
    assert.equal(sent() - before, 20, 'RACED_RACE_WIDTH=2 wins over the file');
    two.child.kill('SIGTERM');
    assert.equal(await exited(two.child), 0);
  } finally {
    for (const u of ups) await u.close();
  }
});

test('SIGTERM: stops accepting, lets a query in flight finish, exits 0', async () => {
  const up = await Stub.start({ address: '192.0.2.8', delayMs: 400 });
  const port = await freePort();
  try {
    const { child } = await spawnRaced(['--listen', `127.0.0.1:${port}`, '--server', up.label]);
    const pending = udpQuery(port, 'inflight.example');
    await sleep(100);
    child.kill('SIGTERM');
    const { packet } = await pending;
    assert.equal(firstData(packet), '192.0.2.8');
    assert.equal(await exited(child), 0);
  } finally {
    await up.close();
  }
});

test('the resolv-file is re-read on change and on SIGHUP, without dropping traffic', async () => {
  const a = await Stub.start({ address: '192.0.2.11' });
  const b = await Stub.start({ address: '192.0.2.12' });
  const rc = join(dir, 'upstreams.conf');
  writeFileSync(rc, `nameserver 127.0.0.1#${a.port}\n`);
  // Started as root, raced re-reads as nobody: the file must be readable by it, as /etc/raced/resolv.conf is.
  chmodSync(dir, 0o755);
  const port = await freePort();
  try {
    const { child, log } = await spawnRaced(['--listen', `127.0.0.1:${port}`, '--resolv-file', rc, '--log-queries']);
    assert.equal(firstData((await udpQuery(port, 'before.example')).packet), '192.0.2.11');
    writeFileSync(rc, `# changed\nnameserver 127.0.0.1#${b.port}\n`);
    child.kill('SIGHUP');
    await sleep(200);
    assert.equal(firstData((await udpQuery(port, 'after.example')).packet), '192.0.2.12');
    // The file watch alone also picks up a change.
    writeFileSync(rc, `nameserver 127.0.0.1#${a.port}\n\n`);
    const t0 = Date.now();
    let got = '';
    while (Date.now() - t0 < 4000) {
      got = firstData((await udpQuery(port, `watch${Date.now()}.example`)).packet) ?? '';
      if (got === '192.0.2.11') break;
      await sleep(200);
    }
    assert.equal(got, '192.0.2.11', log());
    assert.match(log(), /query\[A\] before\.example\. from 127\.0\.0\.1/);
    child.kill('SIGTERM');
    assert.equal(await exited(child), 0);
  } finally {
    await a.close();
    await b.close();
  }
});

test('--workers 2: both transports answer, a start-up error is reported once, SIGTERM stops all', async () => {
  const up = await Stub.start({ address: '192.0.2.9' });
  const port = await freePort();
  try {
    const { child, log } = await spawnRaced(['--listen', `127.0.0.1:${port}`, '--server', up.label, '--workers', '2']);
    const t0 = Date.now();
    while (!log().includes('2 workers ready') && Date.now() - t0 < 5000) await sleep(20);
    for (let i = 0; i < 6; i++) assert.equal(firstData((await udpQuery(port, `w${i}.example`)).packet), '192.0.2.9');
    const [reply] = await tcpExchange(port, [makeQuery('wt.example')], 1);
    assert.equal(firstData(decode(reply!)), '192.0.2.9');
    child.kill('SIGTERM');
    assert.equal(await exited(child), 0);
  } finally {
    await up.close();
  }
  // An address that is not on this host: every worker fails; the message appears once.
  const r = run(['--listen', '192.0.2.254:5353', '--server', '127.0.0.1:5353', '--workers', '2']);
  assert.equal(r.status, 1);
  assert.equal(r.stderr.match(/cannot listen on 192\.0\.2\.254:5353/g)?.length, 1, r.stderr);
  assert.equal(run(['--listen', '127.0.0.1:0', '--server', '127.0.0.1:5353', '--workers', '2']).status, 2);
});

test('reusePort is used from Node 22.12 / 23.1 on', () => {
  assert.equal(hasReusePort('20.20.2'), false);
  assert.equal(hasReusePort('22.11.0'), false);
  assert.equal(hasReusePort('22.12.0'), true);
  assert.equal(hasReusePort('23.0.0'), false);
  assert.equal(hasReusePort('23.1.0'), true);
  assert.equal(hasReusePort('24.0.0'), true);
});

test('start-up errors end with a stable code, and the exit status its kind gives', () => {
  const dir2 = mkdtempSync(join(tmpdir(), 'raced-codes-'));
  const conf = join(dir2, 'bad.conf');
  writeFileSync(conf, 'cache-size=abc\n');
  const cases: [string[], number, string][] = [
    [['--listen', '127.0.0.1:70000'], 2, 'RACED_ERR_OPTION'],
    [['--no-such-flag'], 2, 'RACED_ERR_OPTION'],
    [['--conf-file', conf], 2, 'RACED_ERR_CONF_FILE'],
    [['--listen', '192.0.2.254:5353', '--server', '127.0.0.1:9'], 1, 'RACED_ERR_LISTEN'],
    [['--listen', '127.0.0.1:0', '--no-resolv'], 1, 'RACED_ERR_UPSTREAMS'],
    [['--listen', '127.0.0.1:0', '--server', '127.0.0.1:9', '--hostsfile', join(dir2, 'missing')], 1, 'RACED_ERR_FILE'],
    [['--listen', '127.0.0.1:0', '--server', '127.0.0.1:9', '--user', 'no-such-user-here'], 1, 'RACED_ERR_USER'],
  ];
  for (const [args, status, code] of cases) {
    const r = run(args);
    assert.equal(r.status, status, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr.trim().split('\n').at(-1)!, new RegExp(`\\(${code}\\)$`), `${args.join(' ')}: ${r.stderr}`);
  }
});
