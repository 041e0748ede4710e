// --log-queries (issue 14.7): every query and its reply, whatever answered
// it; --log-level debug logs them too; --log-level error does not silence
// --log-queries.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Stub } from './helpers/stub.js';
import { startRaced, udpQuery, udpRaw, makeQuery, sleep } from './helpers/client.js';
import { CLI, exited, freePort } from './helpers/process.js';

const hosts = join(mkdtempSync(join(tmpdir(), 'raced-qlog-')), 'hosts');
writeFileSync(hosts, '192.0.2.99 printer.lan\n');

for (const [what, over] of [
  ['--log-queries', { logQueries: true, logLevel: 'info' }],
  ['--log-level debug', { logQueries: false, logLevel: 'debug' }],
] as const) {
  test(`${what}: the reply is logged for upstream, cache, hosts and localhost answers alike`, async () => {
    const up = await Stub.start({ address: '192.0.2.5' });
    const r = await startRaced([up.label], { ...over, cacheSize: 100, hostsFiles: [hosts] });
    try {
      for (const name of ['www.example', 'www.example', 'printer.lan', 'localhost']) await udpQuery(r.port, name);
      const lines = r.logs.filter((l) => / (query|reply)[[ ]/.test(l)).map((l) => l.replace(/^raced\[\d+\] \w+: /, ''));
      assert.deepEqual(lines, [
        'query[A] www.example. from 127.0.0.1',
        `reply www.example. is NOERROR from ${up.label}`,
        'query[A] www.example. from 127.0.0.1',
        'reply www.example. is NOERROR (cache)',
        'query[A] printer.lan. from 127.0.0.1',
        'reply printer.lan. is NOERROR (hosts)',
        'query[A] localhost. from 127.0.0.1',
        'reply localhost. is NOERROR (localhost)',
      ]);
    } finally {
      await r.close();
      await up.close();
    }
  });
}

test('--log-level info without --log-queries: no per-query lines', async () => {
  const up = await Stub.start();
  const r = await startRaced([up.label], { logLevel: 'info', cacheSize: 100 });
  try {
    await udpQuery(r.port, 'www.example');
    assert.equal(r.logs.filter((l) => / (query|reply)[[ ]/.test(l)).length, 0);
  } finally {
    await r.close();
    await up.close();
  }
});

test('--log-level error --log-queries: the queries are still logged', async () => {
  const up = await Stub.start();
  const port = await freePort();
  const child = spawn(process.execPath, [CLI, '--listen', `127.0.0.1:${port}`, '--server', up.label, '--log-level', 'error', '--log-queries'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  child.stderr.on('data', (d: Buffer) => (log += d.toString()));
  try {
    let reply: Buffer | null = null;
    for (let i = 0; i < 50 && reply === null; i++) reply = await udpRaw(port, makeQuery('quiet.example'), 200);
    assert.ok(reply, 'raced answers');
    await sleep(100);
    assert.match(log, /query\[A\] quiet\.example\. from 127\.0\.0\.1/);
    assert.match(log, /reply quiet\.example\. is NOERROR/);
    assert.doesNotMatch(log, /listening on/, 'other info lines stay hidden');
  } finally {
    child.kill('SIGTERM');
    await exited(child);
    await up.close();
  }
});
