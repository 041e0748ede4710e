// Flag, environment and --conf-file as a user combines them (issue 14):
// the strategy's precedence, listen-address lists, errors naming their line,
// and the environment form of --serve-stale.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import dgram from 'node:dgram';
import { Stub } from './helpers/stub.js';
import { decode, firstData, makeQuery, sleep, udpQuery } from './helpers/client.js';
import { CLI, exited, freePort, spawnRaced } from './helpers/process.js';

const dir = mkdtempSync(join(tmpdir(), 'raced-prec-'));
let n = 0;
function conf(lines: string[]): string {
  const path = join(dir, `c${n++}.conf`);
  writeFileSync(path, lines.join('\n') + '\n');
  return path;
}

/** The strategy raced reports at start-up for these flags, environment and file lines. */
async function strategyOf(up: Stub, args: string[], env: Record<string, string>, file: string[] = []): Promise<string> {
  const port = await freePort();
  const extra = file.length ? ['--conf-file', conf(file)] : [];
  const { child, log } = await spawnRaced(['--listen', `127.0.0.1:${port}`, '--server', up.label, ...extra, ...args], env);
  child.kill('SIGTERM');
  await exited(child);
  return /strategy (\S+);/.exec(log())?.[1] ?? log();
}

test('the strategy: flags beat environment beat the file, whichever of --strategy, --strict-order, --all-servers each sets', async () => {
  const up = await Stub.start();
  try {
    const cases: [string[], Record<string, string>, string[], string][] = [
      [['--strategy', 'hedged'], { RACED_STRICT_ORDER: '1' }, [], 'hedged'],
      [['--strategy', 'hedged'], {}, ['strict-order'], 'hedged'],
      [[], { RACED_STRATEGY: 'hedged' }, ['all-servers'], 'hedged'],
      [['--strict-order'], { RACED_STRATEGY: 'hedged' }, [], 'ordered'],
      [[], { RACED_ALL_SERVERS: '1' }, ['strict-order'], 'all'],
      [[], {}, ['strict-order'], 'ordered'],
      [[], { RACED_STRICT_ORDER: '0' }, ['all-servers'], 'all'],
      [['--all-servers', '--strategy', 'all'], {}, [], 'all'],
      [[], {}, [], 'all'],
    ];
    for (const [args, env, file, want] of cases) {
      assert.equal(await strategyOf(up, args, env, file), want, `${args.join(' ')} ${JSON.stringify(env)} file:${file.join(',')}`);
    }
  } finally {
    await up.close();
  }
  // Two that disagree at the same level: an error, not a silent pick.
  const r = spawnSync(process.execPath, [CLI, '--strict-order', '--strategy', 'hedged', '--server', '127.0.0.1:9'], { encoding: 'utf8', timeout: 10000 });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--strategy hedged and --strict-order \(flags\) ask for different strategies/);
});

test('conf-file listen-address comma lists: every address gets the port; IPv6 in a list', async () => {
  const up = await Stub.start({ address: '192.0.2.66' });
  const port = await freePort();
  try {
    const file = conf(['no-resolv', `server=127.0.0.1#${up.port}`, 'listen-address=127.0.0.1,127.0.0.2', 'listen-address=::1', `port=${port}`]);
    const { child, log } = await spawnRaced(['--conf-file', file]);
    assert.match(log(), new RegExp(`listening on 127\\.0\\.0\\.1:${port}, 127\\.0\\.0\\.2:${port}, \\[::1\\]:${port};`));
    assert.equal(firstData((await udpQuery(port, 'a.example')).packet), '192.0.2.66');
    // The second address answers on the same port.
    const reply = await new Promise<Buffer | null>((resolve) => {
      const s = dgram.createSocket('udp4');
      const t = setTimeout(() => (s.close(), resolve(null)), 3000);
      s.on('message', (m) => (clearTimeout(t), s.close(), resolve(m)));
      s.send(makeQuery('b.example'), port, '127.0.0.2');
    });
    assert.ok(reply);
    assert.equal(firstData(decode(reply)), '192.0.2.66');
    child.kill('SIGTERM');
    await exited(child);
  } finally {
    await up.close();
  }
});

test('conf-file value errors name the file and line, as unknown keys do', () => {
  const cases: [string[], RegExp][] = [
    [['# x', 'no-resolv', 'cache-size=abc'], /c\d+\.conf:3: cache-size=abc: expected a whole number/],
    [['server=127.0.0.1', 'server=300.1.1.1'], /c\d+\.conf:2: server=300\.1\.1\.1/],
    [['listen-address=127.0.0.1', 'port=99999'], /c\d+\.conf:2: port=99999/],
    [['server=127.0.0.1', '', 'listen-address=127.0.0.1,nowhere'], /c\d+\.conf:3: listen=nowhere:53/],
    [['address=bad'], /c\d+\.conf:1: address=bad/],
  ];
  for (const [lines, re] of cases) {
    const r = spawnSync(process.execPath, [CLI, '--conf-file', conf(lines)], { encoding: 'utf8', timeout: 10000 });
    assert.equal(r.status, 2, r.stderr);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, re);
  }
});

test('RACED_SERVE_STALE=on is --serve-stale alone (1 day); a number is seconds; off is off', async () => {
  // Each raced caches a 1 s answer; then the upstream fails. 2.2 s later only the one day of staleness answers.
  const runs: { value: string; up: Stub; port: number; child?: ChildProcess }[] = [];
  try {
    for (const value of ['on', '1', 'off', 'yes']) {
      const r = { value, up: await Stub.start({ address: '192.0.2.70', ttl: 1 }), port: await freePort() };
      runs.push(r);
      const { child } = await spawnRaced(['--listen', `127.0.0.1:${r.port}`, '--server', r.up.label, '--timeout', '500'], { RACED_SERVE_STALE: value });
      runs[runs.length - 1]!.child = child;
    }
    for (const r of runs) assert.equal(firstData((await udpQuery(r.port, 'stale.example')).packet), '192.0.2.70');
    for (const r of runs) r.up.opts.behaviour = 'servfail';
    await sleep(2200);
    const got = Object.fromEntries(
      await Promise.all(runs.map(async (r) => [r.value, (await udpQuery(r.port, 'stale.example')).packet] as const)),
    );
    assert.equal(firstData(got.on!), '192.0.2.70', 'on: the day-long default');
    assert.equal((got.on!.answers![0] as { ttl?: number }).ttl, 30);
    assert.equal(firstData(got.yes!), '192.0.2.70');
    assert.equal(got['1']!.rcode, 'SERVFAIL', '1: one second, long past');
    assert.equal(got.off!.rcode, 'SERVFAIL');
  } finally {
    for (const r of runs) {
      r.child?.kill('SIGTERM');
      await r.up.close();
    }
  }
  const bad = spawnSync(process.execPath, [CLI, '--server', '127.0.0.1:9'], { env: { ...process.env, RACED_SERVE_STALE: 'maybe' }, encoding: 'utf8', timeout: 10000 });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /RACED_SERVE_STALE|serve-stale.*maybe/);
});
