// --systemd: sockets passed as systemd passes them (LISTEN_PID, LISTEN_FDS,
// descriptors from 3), here by a small python3 launcher standing in for systemd.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import { fileURLToPath } from 'node:url';
import { Stub } from './helpers/stub.js';
import { udpQuery, tcpExchange, makeQuery, decode, firstData, sleep } from './helpers/client.js';
import { listenFds } from '../src/server/systemd.js';

const CLI = fileURLToPath(new URL('../src/main.js', import.meta.url));
const hasPython = spawnSync('sh', ['-c', 'command -v python3']).status === 0;

// Binds UDP and TCP on 127.0.0.1:PORT, puts them at fds 3 and 4, sets
// LISTEN_PID to its own pid and execs raced in place (same pid, as systemd does).
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

test('LISTEN_PID and LISTEN_FDS are checked', () => {
  assert.deepEqual(listenFds({ LISTEN_PID: '42', LISTEN_FDS: '2' }, 42), [3, 4]);
  assert.match(String(listenFds({ LISTEN_PID: '41', LISTEN_FDS: '2' }, 42)), /not this process/);
  assert.match(String(listenFds({}, 42)), /not started by socket activation/);
  assert.match(String(listenFds({ LISTEN_PID: '42', LISTEN_FDS: '0' }, 42)), /no sockets/);
});

test('--systemd serves UDP and TCP on the passed sockets', { skip: !hasPython && 'python3 not installed' }, async () => {
  const up = await Stub.start({ address: '192.0.2.61' });
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  const child = spawn('python3', ['-c', LAUNCHER, String(port), process.execPath, CLI, '--systemd', '--server', up.label], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr.on('data', (d: Buffer) => (log += d.toString()));
  try {
    for (let i = 0; i < 100 && !log.includes('listening on'); i++) await sleep(50);
    assert.match(log, /listening on 127\.0\.0\.1:\d+/);
    assert.equal(firstData((await udpQuery(port, 'sd.example')).packet), '192.0.2.61');
    const [reply] = await tcpExchange(port, [makeQuery('sd-tcp.example')], 1);
    assert.equal(firstData(decode(reply!)), '192.0.2.61');
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    await up.close();
  }
});

test('--systemd without passed sockets is a clear start-up error', () => {
  const r = spawnSync(process.execPath, [CLI, '--systemd', '--server', '127.0.0.1:5353'], { encoding: 'utf8', env: { ...process.env, LISTEN_PID: '', LISTEN_FDS: '' } });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /--systemd: /);
});
