// What reaches the log from outside (issue 22, item 8): refused clients
// cannot set the log's volume, and hosts-file and conf-file lines are cut
// and escaped like the query log, never copied raw.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { Stub } from './helpers/stub.js';
import { startRaced, makeQuery } from './helpers/client.js';
import { CLI } from './helpers/process.js';
import { printable, RateLimitedLog } from '../src/guard.js';

const dir = mkdtempSync(join(tmpdir(), 'raced-logs-'));
// eslint-disable-next-line no-control-regex
const RAW_CONTROL = /[\x00-\x08\x0b-\x1f\x7f]/;

test('printable: control bytes escaped, long values cut with their length', () => {
  assert.equal(printable('a\x1b[31mb\x00c\\d\n'), 'a\\x1b[31mb\\x00c\\\\d\\n');
  const long = printable('x'.repeat(10_000), 50);
  assert.equal(long, `${'x'.repeat(50)}… (10000 characters)`);
});

test('rate-limited log: a burst, then one line saying how many were left out', () => {
  const lines: string[] = [];
  let now = 0;
  const rl = new RateLimitedLog((l) => lines.push(l), 3, 1000, () => now);
  for (let i = 0; i < 100; i++) rl.log(() => `line ${i}`);
  assert.deepEqual(lines, ['line 0', 'line 1', 'line 2']);
  now = 1500;
  rl.log(() => 'later');
  assert.deepEqual(lines.slice(3), ['(97 similar lines left out in the last 2 s)', 'later']);
});

test('--log-queries: refused clients are logged as refused and at a bounded rate; allowed ones each', async () => {
  const up = await Stub.start();
  const r = await startRaced([up.label], { logQueries: true, logLevel: 'info' });
  try {
    const ask = (address: string, name: string): Promise<void> =>
      new Promise((res) => r.raced.pipeline.handle(makeQuery(name), { transport: 'udp', address, port: 5353, respond: () => res() }));
    for (let i = 0; i < 200; i++) await ask('203.0.113.9', `flood${i}.example`);
    const refused = r.logs.filter((l) => l.includes('refused query[A] flood'));
    assert.ok(refused.length >= 1 && refused.length <= 5, `${refused.length} lines for 200 refused queries`);
    assert.ok(refused[0]!.includes('from 203.0.113.9: not allowed'));
    assert.equal(r.logs.filter((l) => / query\[A\] flood/.test(l) && !l.includes('refused')).length, 0, 'not logged as an ordinary query');
    for (let i = 0; i < 10; i++) await ask('127.0.0.1', `ok${i}.example`);
    assert.equal(r.logs.filter((l) => / query\[A\] ok\d\.example\. from 127\.0\.0\.1/.test(l)).length, 10);
  } finally {
    await r.close();
    await up.close();
  }
});

test('a hosts file with a 2 MB line holding ESC and NUL: a short escaped warning, and a cap on skipped-line warnings', async () => {
  const hosts = join(dir, 'hosts');
  const bad = `\x1b[2J\x00${'A'.repeat(2_000_000)}`;
  const many = Array.from({ length: 100 }, (_, i) => `300.0.0.${i} host${i}`).join('\n');
  writeFileSync(hosts, `${bad} evil\n192.0.2.1 good.lan bad\x1bname\n${many}\n`);
  const up = await Stub.start();
  const r = await startRaced([up.label], { hostsFiles: [hosts], logLevel: 'info' });
  try {
    const warns = r.logs.filter((l) => l.includes(' warn: '));
    assert.ok(warns.length > 0);
    for (const w of warns) {
      assert.ok(w.length < 400, `a warning of ${w.length} characters`);
      assert.doesNotMatch(w, RAW_CONTROL, JSON.stringify(w.slice(0, 200)));
    }
    assert.ok(warns.some((w) => w.includes('\\x1b[2J\\x00AAAA') && w.includes('(2000005 characters)')));
    assert.ok(warns.some((w) => w.includes("bad name 'bad\\x1bname'")));
    assert.ok(warns.length <= 21, `${warns.length} warnings for 102 bad lines`);
    assert.ok(warns.some((w) => /\d+ more hosts lines skipped/.test(w)));
  } finally {
    await r.close();
    await up.close();
  }
});

test('a conf-file line of 1 MB with control bytes: exit 2 with one short escaped line', () => {
  const conf = join(dir, 'raced.conf');
  writeFileSync(conf, `\x1b]0;pwned\x07${'k'.repeat(1_000_000)}=1\n`);
  const r = spawnSync(process.execPath, [CLI, '--conf-file', conf], { encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.ok(r.stderr.length < 700, `${r.stderr.length} characters on stderr`);
  assert.doesNotMatch(r.stderr.trimEnd(), RAW_CONTROL);
  assert.match(r.stderr, /\\x1b\]0;pwned\\x07k+/);
  const v = join(dir, 'raced-value.conf');
  writeFileSync(v, `cache-size=\x00${'9'.repeat(500_000)}\n`);
  const r2 = spawnSync(process.execPath, [CLI, '--conf-file', v], { encoding: 'utf8' });
  assert.equal(r2.status, 2);
  assert.ok(r2.stderr.length < 700, `${r2.stderr.length} characters on stderr`);
  assert.doesNotMatch(r2.stderr.trimEnd(), RAW_CONTROL);
});
