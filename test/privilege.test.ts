// Least privilege (issue 22, item 4): started as root, raced binds and then
// runs as --user (default nobody), checked the way an admin would, in
// /proc/PID/status: real, effective, saved and file-system uid and gid, the
// supplementary groups, and the effective capabilities.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import { Stub } from './helpers/stub.js';
import { spawnRaced, freePort, freeTcpPort, CLI, exited } from './helpers/process.js';
import { udpQuery, tcpExchange, makeQuery, decode, firstData, sleep } from './helpers/client.js';
import { plannedUser, lookupUser, PrivilegeError } from '../src/privilege.js';

const root = process.getuid?.() === 0;
const hasPython = spawnSync('sh', ['-c', 'command -v python3']).status === 0;

interface Creds {
  uid: number[];
  gid: number[];
  groups: number[];
  capEff: bigint;
}

function creds(pid: number): Creds {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string): string => new RegExp(`^${name}:\\s*(.*)$`, 'm').exec(status)?.[1]?.trim() ?? '';
  const nums = (s: string): number[] => (s ? s.split(/\s+/).map(Number) : []);
  return { uid: nums(field('Uid')), gid: nums(field('Gid')), groups: nums(field('Groups')), capEff: BigInt(`0x${field('CapEff')}`) };
}

function assertDropped(pid: number, uid: number, gid: number): void {
  const c = creds(pid);
  assert.deepEqual(c.uid, [uid, uid, uid, uid], 'real, effective, saved, fs uid');
  assert.deepEqual(c.gid, [gid, gid, gid, gid], 'real, effective, saved, fs gid');
  assert.deepEqual(c.groups, [gid], 'no supplementary group of root is left');
  assert.equal(c.capEff, 0n, 'no effective capability');
}

test('the plan: default nobody as root; stays as it is otherwise; --default-resolver keeps root', () => {
  assert.equal(plannedUser(null, false, 0)?.name, 'nobody');
  assert.equal(plannedUser('daemon', false, 0)?.uid, lookupUser('daemon').uid);
  assert.equal(plannedUser(null, false, 1000), null);
  assert.equal(plannedUser(null, true, 0), null);
  assert.throws(() => plannedUser('nobody', true, 0), /--default-resolver/);
  assert.throws(() => plannedUser('root', false, 0), /that is root/);
  assert.throws(() => plannedUser('no-such-user-22', false, 0), PrivilegeError);
  assert.throws(() => plannedUser('daemon', false, 65534), /not running as root/);
  assert.deepEqual(lookupUser('65534'), { name: 'nobody', uid: 65534, gid: 65534 }, 'a number is a uid, its gid from passwd');
  assert.throws(() => lookupUser('../etc'), /not a user name/);
});

test('started as root: binds, then runs as nobody with no capability, and still answers', { skip: !root && 'needs root' }, async () => {
  const up = await Stub.start({ address: '192.0.2.71' });
  const port = await freePort();
  const { child, log } = await spawnRaced(['--listen', `127.0.0.1:${port}`, '--server', up.label, '--metrics-listen', `127.0.0.1:${await freeTcpPort()}`]);
  try {
    for (let i = 0; i < 50 && !log().includes('running as'); i++) await sleep(20);
    assert.match(log(), /running as nobody \(uid 65534, gid 65534\)/);
    assertDropped(child.pid!, 65534, 65534);
    assert.equal(firstData((await udpQuery(port, 'priv.example')).packet), '192.0.2.71');
    const [t] = await tcpExchange(port, [makeQuery('priv-tcp.example')], 1);
    assert.equal(firstData(decode(t!)), '192.0.2.71');
    // SIGHUP re-reads what it can as nobody and keeps serving.
    child.kill('SIGHUP');
    await sleep(100);
    assert.equal(firstData((await udpQuery(port, 'priv-after-hup.example')).packet), '192.0.2.71');
  } finally {
    child.kill('SIGTERM');
    await exited(child);
    await up.close();
  }
});

test('--user NAME: that user; an unknown name is a start-up error before anything is bound', { skip: !root && 'needs root' }, async () => {
  const up = await Stub.start();
  const port = await freePort();
  const daemon = lookupUser('daemon');
  const { child, log } = await spawnRaced(['--listen', `127.0.0.1:${port}`, '--server', up.label, '--user', 'daemon']);
  try {
    for (let i = 0; i < 50 && !log().includes('running as'); i++) await sleep(20);
    assertDropped(child.pid!, daemon.uid, daemon.gid);
  } finally {
    child.kill('SIGTERM');
    await exited(child);
    await up.close();
  }
  const bad = spawnSync(process.execPath, [CLI, '--listen', `127.0.0.1:${port}`, '--server', '127.0.0.1:5353', '--user', 'no-such-user-22'], { encoding: 'utf8' });
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /--user: no such user 'no-such-user-22'/);
  assert.doesNotMatch(bad.stderr, /listening on/);
});

test('--workers 2: each worker runs as nobody; the primary, which answers no query, stays root to replace workers', { skip: !root && 'needs root', timeout: 30_000 }, async () => {
  const up = await Stub.start({ address: '192.0.2.72' });
  const port = await freePort();
  const child = spawn(process.execPath, [CLI, '--listen', `127.0.0.1:${port}`, '--server', up.label, '--workers', '2'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr.on('data', (d: Buffer) => (log += d.toString()));
  try {
    for (let i = 0; i < 200 && !log.includes('2 workers ready'); i++) await sleep(25);
    assert.match(log, /2 workers ready/);
    const kids = readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim().split(/\s+/).map(Number);
    assert.equal(kids.length, 2);
    for (const pid of kids) assertDropped(pid, 65534, 65534);
    assert.equal(creds(child.pid!).uid[1], 0);
    assert.equal(firstData((await udpQuery(port, 'workers-priv.example')).packet), '192.0.2.72');
  } finally {
    child.kill('SIGTERM');
    await exited(child);
    await up.close();
  }
});

// The launcher of test/systemd.test.ts: binds, passes fds 3 and 4, execs raced in place.
const LAUNCHER = `
import os, socket, sys
port = int(sys.argv[1])
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(('127.0.0.1', port))
t = socket.socket(socket.AF_INET, socket.SOCK_STREAM); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); t.bind(('127.0.0.1', port)); t.listen(64)
os.dup2(u.fileno(), 3); os.dup2(t.fileno(), 4)
os.set_inheritable(3, True); os.set_inheritable(4, True)
env = dict(os.environ, LISTEN_FDS='2', LISTEN_PID=str(os.getpid()))
os.execve(sys.argv[2], sys.argv[2:], env)
`;

test('--systemd as root: the passed sockets keep serving after the drop', { skip: (!root || !hasPython) && 'needs root and python3' }, async () => {
  const up = await Stub.start({ address: '192.0.2.73' });
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  const child = spawn('python3', ['-c', LAUNCHER, String(port), process.execPath, CLI, '--systemd', '--server', up.label], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr.on('data', (d: Buffer) => (log += d.toString()));
  try {
    for (let i = 0; i < 100 && !log.includes('running as'); i++) await sleep(50);
    assertDropped(child.pid!, 65534, 65534);
    assert.equal(firstData((await udpQuery(port, 'sd-priv.example')).packet), '192.0.2.73');
    const [t] = await tcpExchange(port, [makeQuery('sd-priv-tcp.example')], 1);
    assert.equal(firstData(decode(t!)), '192.0.2.73');
  } finally {
    child.kill('SIGTERM');
    await exited(child);
    await up.close();
  }
});

test('root of a user namespace that maps no nobody (a container, unshare -r): without --user raced warns and runs on; with --user it is an error', { skip: !root && 'needs root' }, () => {
  const script = (user: string): string =>
    `ip link set lo up; "${process.execPath}" "${CLI}" --listen 127.0.0.1:5300 --server 127.0.0.1:9 --no-resolv ${user} & p=$!; ` +
    `for i in $(seq 1 40); do dig +short +tries=1 +time=1 @127.0.0.1 -p 5300 localhost && break; sleep 0.1; done; kill $p 2>/dev/null; wait $p; echo "rc=$?"`;
  const implicit = spawnSync('unshare', ['-rn', 'sh', '-c', script('')], { encoding: 'utf8', timeout: 20_000 });
  assert.match(implicit.stdout, /^127\.0\.0\.1$/m, implicit.stdout + implicit.stderr);
  assert.match(implicit.stderr, /cannot switch to uid \d+.*running on as uid 0/);
  const explicit = spawnSync('unshare', ['-rn', 'sh', '-c', script('--user nobody')], { encoding: 'utf8', timeout: 20_000 });
  assert.doesNotMatch(explicit.stdout, /^127\.0\.0\.1$/m);
  assert.match(explicit.stdout, /rc=1/);
  assert.match(explicit.stderr, /raced: --user nobody: cannot switch/);
});
