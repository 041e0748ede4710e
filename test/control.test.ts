// --control-socket and the commands that use it, as an operator runs them:
// raced as a process, `raced cache …` / `raced reload` as processes of the
// same binary, answers checked with dig.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import fs from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Stub } from './helpers/stub.js';
import { CLI, freePort, exited, spawnRaced } from './helpers/process.js';
import { sleep } from './helpers/client.js';
import { fileKeys } from '../src/cache/persist.js';
import { AnswerCache } from '../src/cache/cache.js';
import { dumpLines, nameToWire } from '../src/control.js';
import { scanMessage } from '../src/wire/message.js';

const hasDig = spawnSync('sh', ['-c', 'command -v dig']).status === 0;
const run = promisify(execFile);
const dig = async (port: number, name: string, ...extra: string[]): Promise<string> =>
  (await run('dig', ['@127.0.0.1', '-p', String(port), name, '+tries=1', '+time=3', '+short', ...extra], { encoding: 'utf8', timeout: 15000 })).stdout.trim();
/** `raced ARGS…`: exit status, stdout, stderr. */
function raced(args: string[], env: Record<string, string> = {}): Promise<{ status: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 15000, env: { ...process.env, ...env } }, (err, out, errOut) => {
      resolve({ status: err ? ((err as { code?: number }).code ?? -1) : 0, out, err: errOut });
    });
  });
}
/** spawnRaced returns once raced listens for DNS; the control socket comes right after. */
async function controlReady(log: () => string): Promise<void> {
  const t0 = Date.now();
  while (!log().includes('control socket on') && Date.now() - t0 < 5000) await sleep(20);
}
function tmp(): string {
  const d = fs.mkdtempSync(join(tmpdir(), 'raced-control-'));
  if (process.getuid?.() === 0) fs.chownSync(d, 65534, 65534);
  return d;
}

test('flush one name, dump, flush everything, save: through the control socket', { skip: !hasDig && 'dig not installed' }, async () => {
  const dir = tmp();
  const sock = join(dir, 'ctl');
  const file = join(dir, 'cache');
  const up = await Stub.start({ ttl: 300, address: '192.0.2.7' });
  const port = await freePort();
  const r = await spawnRaced(['--listen', `127.0.0.1:${port}`, '--server', up.label, '--control-socket', sock, '--cache-file', file, '--cache-save-interval', '0']);
  await controlReady(r.log);
  try {
    const st = fs.statSync(sock);
    assert.ok(st.isSocket());
    assert.equal(st.mode & 0o777, 0o600, 'owner only');
    assert.equal(st.uid, process.getuid!(), 'owned by the user raced was started as');
    for (const n of ['a.ctl.example', 'b.ctl.example']) assert.equal(await dig(port, n), '192.0.2.7');
    await dig(port, 'a.ctl.example', 'AAAA');
    await dig(port, 'A.CTL.EXAMPLE', '+dnssec'); // the DO=1 entry is kept apart
    const dump = await raced(['cache', 'dump', '--control-socket', sock]);
    assert.equal(dump.status, 0, dump.err);
    const lines = dump.out.trim().split('\n').sort();
    assert.equal(lines.length, 4, dump.out);
    assert.match(lines[0]!, /^a\.ctl\.example\. A NOERROR (29\d|300)$/);
    assert.match(lines[1]!, /^a\.ctl\.example\. A NOERROR (29\d|300) do$/);
    assert.match(lines[2]!, /^a\.ctl\.example\. AAAA NOERROR (29\d|300)$/);
    assert.match(lines[3]!, /^b\.ctl\.example\. A NOERROR (29\d|300)$/);

    // One name: every entry of it (A, AAAA, DO) goes, the other name stays. The name is matched case-insensitively.
    const one = await raced(['cache', 'flush', 'A.Ctl.Example.', '--control-socket', sock]);
    assert.equal(one.status, 0, one.err);
    assert.equal(one.out, 'flushed 3 entries\n');
    const asked = up.count();
    assert.equal(await dig(port, 'b.ctl.example'), '192.0.2.7');
    assert.equal(up.count(), asked, 'b still cached');
    assert.equal(await dig(port, 'a.ctl.example'), '192.0.2.7');
    assert.equal(up.count(), asked + 1, 'a asked upstream again');

    const save = await raced(['cache', 'save'], { RACED_CONTROL_SOCKET: sock });
    assert.equal(save.status, 0, save.err);
    assert.equal(save.out, `saved 2 entries to ${file}\n`);
    assert.equal(fileKeys(fs.readFileSync(file)).length, 2);
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);

    const all = await raced(['cache', 'flush', '--control-socket', sock]);
    assert.equal(all.out, 'flushed 2 entries\n');
    assert.equal((await raced(['cache', 'dump', '--control-socket', sock])).out, '');
    await dig(port, 'b.ctl.example');
    assert.equal(up.count(), asked + 2, 'b asked upstream again after the full flush');
    assert.match(r.log(), /control: cache flush A\.Ctl\.Example\./);

    const bad = await raced(['cache', 'flush', 'a..b', '--control-socket', sock]);
    assert.equal(bad.status, 1);
    assert.match(bad.err, /^raced cache flush: not a domain name: 'a\.\.b'/);
  } finally {
    r.child.kill('SIGTERM');
    await exited(r.child);
    await up.close();
  }
  assert.ok(!fs.existsSync(sock) || process.getuid?.() === 0, 'the socket is removed at exit (as root it may stay: nobody cannot remove it; the next start replaces it)');
});

test('raced reload is SIGHUP: an edited hosts file is read again', { skip: !hasDig && 'dig not installed' }, async () => {
  const dir = tmp();
  const sock = join(dir, 'ctl');
  const hosts = join(dir, 'hosts');
  fs.writeFileSync(hosts, '192.0.2.1 printer.lan\n', { mode: 0o644 });
  const up = await Stub.start({});
  const port = await freePort();
  const r = await spawnRaced(['--listen', `127.0.0.1:${port}`, '--server', up.label, '--hostsfile', hosts, '--control-socket', sock]);
  await controlReady(r.log);
  try {
    assert.equal(await dig(port, 'printer.lan'), '192.0.2.1');
    fs.writeFileSync(hosts, '192.0.2.2 printer.lan\n');
    await sleep(100);
    assert.equal(await dig(port, 'printer.lan'), '192.0.2.1', 'no polling: not seen before the reload');
    const res = await raced(['reload', '--control-socket', sock]);
    assert.equal(res.status, 0, res.err);
    assert.equal(res.out, 'reloading\n');
    const t0 = Date.now();
    while (Date.now() - t0 < 3000 && (await dig(port, 'printer.lan')) !== '192.0.2.2') await sleep(100);
    assert.equal(await dig(port, 'printer.lan'), '192.0.2.2');
    assert.match(r.log(), /SIGHUP: reloading upstreams/);
    assert.equal(r.child.exitCode, null, 'still running');
  } finally {
    r.child.kill('SIGTERM');
    await exited(r.child);
    await up.close();
  }
});

test('a clear error when nothing listens, when no socket is named, and for a file that is no socket', async () => {
  const dir = tmp();
  const none = await raced(['cache', 'dump', '--control-socket', join(dir, 'nothing')]);
  assert.equal(none.status, 1);
  assert.equal(none.err, `raced cache dump: nothing listens on ${join(dir, 'nothing')} (is raced running with --control-socket ${join(dir, 'nothing')}?)\n`);
  // A socket file whose raced is gone (kill -9): the same message.
  const stale = join(dir, 'stale');
  const holder = spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(stale)}, () => process.kill(process.pid, 'SIGKILL'))`]);
  assert.equal(holder.signal, 'SIGKILL');
  assert.ok(fs.statSync(stale).isSocket());
  const gone = await raced(['reload', '--control-socket', stale]);
  assert.equal(gone.status, 1);
  assert.match(gone.err, /^raced reload: nothing listens on /);
  // The socket named before the subcommand: the same, and no raced starts on the side.
  const before = await raced(['--control-socket', join(dir, 'nothing'), 'cache', 'dump']);
  assert.equal(before.status, 1);
  assert.equal(before.err, none.err);
  const unnamed = await raced(['cache', 'save'], { RACED_CONTROL_SOCKET: '' });
  assert.equal(unnamed.status, 2);
  assert.match(unnamed.err, /raced cache save: give --control-socket PATH/);
  // raced itself: a regular file at the path is an error at start, nothing is deleted.
  const file = join(dir, 'regular');
  fs.writeFileSync(file, 'keep me');
  const start = spawnSync(process.execPath, [CLI, '--listen', `127.0.0.1:${await freePort()}`, '--server', '127.0.0.1:1', '--control-socket', file], { encoding: 'utf8', timeout: 10000 });
  assert.equal(start.status, 1, start.stderr);
  assert.match(start.stderr, /--control-socket .*regular: exists and is not a socket/);
  assert.equal(fs.readFileSync(file, 'utf8'), 'keep me');
});

test('a socket left by a raced that is gone is replaced; one a live raced answers on is refused', async () => {
  const dir = tmp();
  const sock = join(dir, 'ctl');
  const up = await Stub.start({});
  const p1 = await freePort();
  const first = await spawnRaced(['--listen', `127.0.0.1:${p1}`, '--server', up.label, '--control-socket', sock]);
  await controlReady(first.log);
  try {
    const second = spawnSync(process.execPath, [CLI, '--listen', `127.0.0.1:${await freePort()}`, '--server', up.label, '--control-socket', sock], { encoding: 'utf8', timeout: 10000 });
    assert.equal(second.status, 1);
    assert.match(second.stderr, /another raced is listening there/);
    assert.equal((await raced(['cache', 'dump', '--control-socket', sock])).status, 0, 'the first one still answers');
    first.child.kill('SIGKILL');
    await exited(first.child);
    assert.ok(fs.existsSync(sock), 'kill -9 leaves the socket file');
    const p3 = await freePort();
    const third = await spawnRaced(['--listen', `127.0.0.1:${p3}`, '--server', up.label, '--control-socket', sock]);
  await controlReady(third.log);
    assert.equal((await raced(['cache', 'flush', '--control-socket', sock])).out, 'flushed 0 entries\n');
    third.child.kill('SIGTERM');
    await exited(third.child);
  } finally {
    await up.close();
  }
});

test('the line protocol: unknown commands and overlong lines get an error line, never a crash', async () => {
  const dir = tmp();
  const sock = join(dir, 'ctl');
  const up = await Stub.start({});
  const port = await freePort();
  const r = await spawnRaced(['--listen', `127.0.0.1:${port}`, '--server', up.label, '--control-socket', sock]);
  await controlReady(r.log);
  const talk = (data: string): Promise<string> =>
    new Promise((resolve) => {
      const s = net.connect(sock, () => s.write(data));
      let out = '';
      s.on('data', (d) => (out += d.toString()));
      s.on('close', () => resolve(out));
      s.on('error', () => resolve(out));
    });
  try {
    assert.equal(await talk('cache explode\n'), "error: unknown command 'cache explode' (cache flush [NAME] | cache dump | cache save | reload)\n");
    assert.equal(await talk('cache save\n'), 'error: no --cache-file to save to\n');
    assert.equal(await talk('x'.repeat(5000)), 'error: command line longer than 1024 bytes\n');
    assert.equal(await talk('cache\x00dump\x1b[2J\n'), "error: unknown command 'cache\\x00dump\\x1b[2J' (cache flush [NAME] | cache dump | cache save | reload)\n");
    assert.equal(await talk('cache dump\n'), 'ok\n');
    assert.equal(r.child.exitCode, null);
  } finally {
    r.child.kill('SIGTERM');
    await exited(r.child);
    await up.close();
  }
});

test('--workers 2: the primary holds the socket, a command reaches every worker', { skip: !hasDig && 'dig not installed' }, async () => {
  const dir = tmp();
  const sock = join(dir, 'ctl');
  const up = await Stub.start({ ttl: 300, address: '192.0.2.8' });
  const port = await freePort();
  const r = await spawnRaced(['--workers', '2', '--listen', `127.0.0.1:${port}`, '--server', up.label, '--control-socket', sock]);
  try {
    const t0 = Date.now();
    while (!(r.log().includes('2 workers ready') && r.log().includes('control socket on')) && Date.now() - t0 < 10000) await sleep(50);
    assert.match(r.log(), /control socket on .* \(commands go to all 2 workers\)/);
    assert.equal(fs.statSync(sock).mode & 0o777, 0o600);
    // Enough queries that both workers (each with its own cache) hold the name.
    for (let i = 0; i < 20; i++) assert.equal(await dig(port, 'w.ctl.example'), '192.0.2.8');
    const dump = await raced(['cache', 'dump', '--control-socket', sock]);
    assert.equal(dump.status, 0, dump.err);
    const lines = dump.out.trim().split('\n');
    assert.ok(lines.length >= 1 && lines.length <= 2, dump.out);
    for (const l of lines) assert.match(l, /^w\.ctl\.example\. A NOERROR \d+$/);
    const flush = await raced(['cache', 'flush', 'w.ctl.example', '--control-socket', sock]);
    assert.equal(flush.status, 0, flush.err);
    const said = flush.out.trim().split('\n');
    assert.equal(said.length, 2, flush.out);
    assert.match(said[0]!, /^worker 1 \(pid \d+\): flushed [01] entries$/);
    assert.match(said[1]!, /^worker 2 \(pid \d+\): flushed [01] entries$/);
    assert.equal(said.reduce((n, l) => n + Number(/flushed (\d)/.exec(l)![1]), 0), lines.length, 'every entry the dump showed went');
    assert.equal((await raced(['cache', 'dump', '--control-socket', sock])).out, '');
    const reload = await raced(['reload', '--control-socket', sock]);
    assert.equal(reload.status, 0, reload.err);
    const t1 = Date.now();
    while ((r.log().match(/SIGHUP: reloading upstreams/g) ?? []).length < 2 && Date.now() - t1 < 5000) await sleep(50);
    assert.equal((r.log().match(/SIGHUP: reloading upstreams/g) ?? []).length, 2, 'both workers reloaded');
    const save = await raced(['cache', 'save', '--control-socket', sock]);
    assert.equal(save.status, 1);
    assert.match(save.err, /--cache-file works with --workers 1 only/);
  } finally {
    r.child.kill('SIGTERM');
    await exited(r.child);
    await up.close();
  }
  assert.ok(!fs.existsSync(sock), 'the primary removes the socket when it stops');
});

test('dump lines: a stale entry, another class, CD', async () => {
  const cache = new AnswerCache({ size: 10, minTtl: 0, maxTtl: 86400, negCache: true, negTtl: -1, serveStale: 60, prefetch: false });
  const reply = (name: string, cls: number, ttl: number, rcode = 0): Buffer => {
    const wire = nameToWire(name);
    const head = Buffer.from([0, 0, 0x81, 0x80 | rcode, 0, 1, 0, 1, 0, 0, 0, 0]);
    const rr = Buffer.from([0xc0, 12, 0, 16, 0, cls, 0, 0, 0, ttl, 0, 2, 1, 0x78]);
    return Buffer.concat([head, wire, Buffer.from([0, 16, 0, cls]), rr]);
  };
  const put = (name: string, cls: number, ttl: number, flags: number): void => {
    const r = reply(name, cls, ttl);
    const scan = scanMessage(r, true)!;
    cache.store(r.toString('latin1', 12, scan.qEnd) + String.fromCharCode(flags), r, scan, 0);
  };
  put('version.bind', 3, 100, 0);
  put('old.example', 1, 1, 0);
  put('cd.example', 1, 100, 2);
  assert.deepEqual(await dumpLines(cache, 5000), ['version.bind. TXT CLASS3 NOERROR 95', 'old.example. TXT NOERROR 0 stale', 'cd.example. TXT NOERROR 95 cd']);
});
