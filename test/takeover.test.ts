// --default-resolver in a private mount + network namespace with a
// bind-mounted /etc/resolv.conf, and glibc's getaddrinfo resolving through it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ResolvTakeover, MARKER } from '../src/config/takeover.js';
import { namespaceCommand } from './helpers/process.js';

const has = (c: string): boolean => spawnSync('sh', ['-c', `command -v ${c}`]).status === 0;
const canNamespace = process.getuid?.() === 0 && has('unshare') && has('getent') && has('ip');

test('take-over file logic: backup, search and options kept, restore, crash recovery', () => {
  const dir = mkdtempSync(join(tmpdir(), 'raced-to-'));
  const rc = join(dir, 'resolv.conf');
  const orig = 'search corp.example\nnameserver 192.0.2.53\noptions ndots:2 timeout:1\n';
  writeFileSync(rc, orig);
  const t = new ResolvTakeover(rc);
  t.install('127.0.0.1');
  const now = readFileSync(rc, 'utf8');
  assert.ok(now.startsWith(MARKER));
  assert.match(now, /^nameserver 127\.0\.0\.1$/m);
  assert.match(now, /^search corp\.example$/m);
  assert.match(now, /^options ndots:2 timeout:1$/m);
  assert.equal(readFileSync(t.backup, 'utf8'), orig);
  // A second raced after a crash reads the original from the backup.
  const again = new ResolvTakeover(rc);
  assert.deepEqual(again.original().nameservers, ['192.0.2.53']);
  again.install('127.0.0.1');
  assert.equal(readFileSync(t.backup, 'utf8'), orig, 'the backup is not overwritten by raced\'s own file');
  again.restore();
  assert.equal(readFileSync(rc, 'utf8'), orig);
});

test(
  '--default-resolver: take-over, getaddrinfo through it, restore on SIGTERM, bind failure, kill -9 and restart',
  { skip: !canNamespace && 'needs root, unshare, ip and getent', timeout: 90_000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'raced-takeover-'));
    const conf = join(dir, 'resolv.conf');
    const original = '# the host\'s own\nnameserver 127.0.0.2\nsearch takeover.test\noptions timeout:1 attempts:1\n';
    writeFileSync(conf, original);
    const script = fileURLToPath(new URL('./helpers/takeover.js', import.meta.url));
    const { stdout } = await promisify(execFile)(
      'unshare',
      namespaceCommand(conf, script),
      { encoding: 'utf8', timeout: 85_000 },
    );
    const o = JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, unknown>;
    assert.equal(o.started, true);
    assert.match(String(o.duringFile), /^# Written by raced/);
    assert.match(String(o.duringFile), /^nameserver 127\.0\.0\.1$/m);
    assert.match(String(o.duringFile), /^search takeover\.test$/m);
    assert.equal(o.backupSaved, true);
    assert.deepEqual(o.lookupsDuring, ['192.0.2.77', '192.0.2.77', '192.0.2.77']);
    assert.equal(o.exitAfterTerm, 0);
    assert.equal(o.restoredAfterTerm, true);
    assert.equal(o.backupGoneAfterTerm, true);
    assert.equal(o.lookupAfterTerm, '192.0.2.77', 'the host resolves directly again');
    assert.equal(o.bindFailExit, 1);
    assert.match(String(o.bindFailMessage), /address already in use/);
    assert.equal(o.untouchedAfterBindFailure, true);
    assert.equal(o.secondStarted, true);
    assert.equal(o.leftAfterKill9, true);
    assert.equal(o.restartedAfterCrash, true);
    assert.doesNotMatch(String(o.restartLog), /upstreams 127\.0\.0\.1:53/);
    assert.equal(o.lookupAfterRestart, '192.0.2.77');
    assert.equal(o.exitAfterRestart, 0);
    assert.equal(o.restoredAfterCrashCycle, true);
    // The file on disk outside the namespace is the bind-mount source: it must be the original again.
    assert.equal(readFileSync(conf, 'utf8'), original);
  },
);
