// --default-resolver: the file logic in a scratch directory, then the whole
// take-over in a private mount + network namespace whose /etc is a scratch
// copy (bind-mounted) and /run a tmpfs, with glibc's getaddrinfo resolving
// through it. Nothing is written to the host's own /etc.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, writeFileSync, readFileSync, symlinkSync, lstatSync, readlinkSync, chmodSync, chownSync, rmSync, existsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ResolvTakeover, MARKER } from '../src/config/takeover.js';
import { privateEtcCommand } from './helpers/process.js';

const has = (c: string): boolean => spawnSync('sh', ['-c', `command -v ${c}`]).status === 0;
const root = process.getuid?.() === 0;
const canNamespace = root && has('unshare') && has('getent') && has('ip') && has('setpriv');
const modeOf = (p: string): number => lstatSync(p).mode & 0o7777;

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
  assert.equal(again.restore(), 'restored');
  assert.equal(readFileSync(rc, 'utf8'), orig);
  assert.equal(again.restore(), 'nothing', 'a second restore does nothing');
});

test('take-over of a symlinked resolv.conf under umask 027: 0644 while running, the same symlink back, its target untouched', () => {
  const dir = mkdtempSync(join(tmpdir(), 'raced-to-'));
  const target = join(dir, 'stub-resolv.conf');
  const text = 'nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lan\n';
  writeFileSync(target, text);
  const rc = join(dir, 'resolv.conf');
  symlinkSync('stub-resolv.conf', rc);
  const old = process.umask(0o027);
  try {
    const t = new ResolvTakeover(rc);
    assert.deepEqual(t.original().nameservers, ['127.0.0.53']);
    t.install('127.0.0.1');
    assert.ok(lstatSync(rc).isFile(), 'the link is replaced, not written through');
    assert.equal(modeOf(rc), 0o644);
    assert.equal(readFileSync(target, 'utf8'), text, 'the target is untouched');
    assert.ok(lstatSync(t.backup).isSymbolicLink());
    assert.equal(t.describeOriginal(), 'symlink to stub-resolv.conf');
    // A crash, and a new start: the original still comes from the backup.
    const again = new ResolvTakeover(rc);
    assert.deepEqual(again.original().nameservers, ['127.0.0.53']);
    again.install('127.0.0.1');
    assert.equal(again.restore(), 'restored');
    assert.ok(lstatSync(rc).isSymbolicLink());
    assert.equal(readlinkSync(rc), 'stub-resolv.conf');
    assert.equal(readFileSync(target, 'utf8'), text);
    assert.equal(existsSync(t.backup), false);
  } finally {
    process.umask(old);
  }
});

test('take-over restores mode, owner and content; a file another program wrote is kept and reported as kept', { skip: !root && 'chown needs root' }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'raced-to-'));
  const rc = join(dir, 'resolv.conf');
  writeFileSync(rc, 'nameserver 192.0.2.53\n');
  chmodSync(rc, 0o604);
  chownSync(rc, 4242, 4343);
  const old = process.umask(0o077);
  try {
    const t = new ResolvTakeover(rc);
    t.install('127.0.0.1');
    assert.equal(modeOf(rc), 0o644);
    assert.equal(t.restore(), 'restored');
    const st = statSync(rc);
    assert.deepEqual([st.mode & 0o7777, st.uid, st.gid], [0o604, 4242, 4343]);
    assert.equal(readFileSync(rc, 'utf8'), 'nameserver 192.0.2.53\n');
    const u = new ResolvTakeover(rc);
    u.install('127.0.0.1');
    writeFileSync(rc, 'nameserver 198.51.100.1\n');
    assert.equal(u.restore(), 'kept');
    assert.equal(readFileSync(rc, 'utf8'), 'nameserver 198.51.100.1\n');
    assert.equal(existsSync(u.backup), false);
  } finally {
    process.umask(old);
  }
});

/** A scratch copy of /etc whose resolv.conf is `original`, as a file or as a systemd-resolved style symlink. */
async function privateEtc(mode: 'file' | 'symlink', original: string): Promise<{ etc: string; env: Record<string, string> }> {
  const dir = mkdtempSync(join(tmpdir(), 'raced-takeover-'));
  const etc = join(dir, 'etc');
  await promisify(execFile)('cp', ['-a', '/etc/.', `${etc}/`]);
  rmSync(join(etc, 'resolv.conf'), { force: true });
  rmSync(join(etc, 'resolv.conf.raced-orig'), { force: true });
  if (mode === 'symlink') {
    const stub = join(dir, 'stub-resolv.conf');
    writeFileSync(stub, original);
    symlinkSync('../run/systemd/resolve/stub-resolv.conf', join(etc, 'resolv.conf'));
    return { etc, env: { RACED_TEST_LINK: stub } };
  }
  writeFileSync(join(etc, 'resolv.conf'), original);
  chmodSync(join(etc, 'resolv.conf'), 0o664);
  chownSync(join(etc, 'resolv.conf'), 4242, 4242);
  return { etc, env: {} };
}

function hostEtc(): string {
  const st = lstatSync('/etc/resolv.conf');
  const what = st.isSymbolicLink() ? `link ${readlinkSync('/etc/resolv.conf')}` : `${st.mode} ${st.uid} ${st.mtimeMs} ${readFileSync('/etc/resolv.conf', 'utf8')}`;
  return `${what} backup:${existsSync('/etc/resolv.conf.raced-orig')}`;
}

for (const mode of ['file', 'symlink'] as const) {
  test(
    `--default-resolver (${mode === 'file' ? 'a regular resolv.conf, mode 0664 owner 4242' : 'resolv.conf a symlink into /run, as systemd-resolved makes it'}): ` +
      'umask 027, getaddrinfo as root and nobody, restore on SIGTERM, bind failure, kill -9 and restart, a rewrite kept',
    { skip: !canNamespace && 'needs root, unshare, ip, setpriv and getent', timeout: 90_000 },
    async () => {
      const original = "# the host's own\nnameserver 127.0.0.1\nnameserver 127.0.0.2\nsearch takeover.test\noptions timeout:1 attempts:1\n";
      const { etc, env } = await privateEtc(mode, original);
      const host = hostEtc();
      const script = fileURLToPath(new URL('./helpers/takeover.js', import.meta.url));
      const { stdout } = await promisify(execFile)('unshare', privateEtcCommand(etc, script, [mode]), {
        encoding: 'utf8',
        timeout: 85_000,
        env: { ...process.env, ...env },
      });
      const o = JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, unknown>;
      assert.equal(o.lookupBefore, '192.0.2.77', 'the original resolves for nobody');
      assert.equal(o.started, true);
      assert.match(String(o.duringFile), /^# Written by raced/);
      assert.match(String(o.duringFile), /^nameserver 127\.0\.0\.1$/m);
      assert.match(String(o.duringFile), /^search takeover\.test$/m);
      assert.equal(o.duringState, 'file 644 0:0', 'raced\'s file is 0644 whatever the umask');
      assert.equal(o.backupSaved, true);
      assert.equal(o.backupIsLink, mode === 'symlink');
      assert.deepEqual(o.lookupsDuring, ['192.0.2.77', '192.0.2.77', '192.0.2.77']);
      assert.equal(o.lookupDuringAsNobody, '192.0.2.77', 'non-root users resolve through raced too');
      assert.match(String(o.firstLog), /skipping upstream 127\.0\.0\.1:53 from \/etc\/resolv\.conf: it is raced's own listen address/);
      assert.match(String(o.firstLog), mode === 'symlink' ? /\/etc\/resolv\.conf restored \(symlink to \.\.\/run\/systemd\/resolve\/stub-resolv\.conf\)/ : /\/etc\/resolv\.conf restored \(file\)/);
      assert.equal(o.exitAfterTerm, 0);
      assert.equal(o.restoredAfterTerm, true, `after SIGTERM: ${String(o.stateAfterTerm)}`);
      assert.equal(o.targetUntouched, true);
      assert.equal(o.backupGoneAfterTerm, true);
      assert.equal(o.lookupAfterTerm, '192.0.2.77', 'the host resolves directly again, also for nobody');
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
      assert.equal(o.thirdStarted, true);
      assert.equal(o.exitAfterRewrite, 0);
      assert.equal(o.keptTheirs, true);
      assert.match(String(o.rewriteLog), /rewritten by another program while raced ran: left as it is/);
      assert.doesNotMatch(String(o.rewriteLog), /resolv\.conf restored/);
      // The host's own /etc was never written.
      assert.equal(hostEtc(), host);
    },
  );
}
