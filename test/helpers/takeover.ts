// --default-resolver, run inside a private mount and network namespace
// (see takeover.test.ts) whose /etc is a bind mount of a scratch copy and
// whose /run is a fresh tmpfs: nothing here can touch the host's files.
// Upstream: a stand-in on 127.0.0.2:53 named by the original resolv.conf.
// argv[2]: 'file' (resolv.conf a regular file) or 'symlink' (a link to
// /run/systemd/resolve/stub-resolv.conf, as systemd-resolved makes it).
// raced runs under umask 027; lookups are made as root and as nobody.
// Prints one JSON object with what was observed at each step.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { readFileSync, existsSync, lstatSync, readlinkSync, writeFileSync, renameSync } from 'node:fs';
import dgram from 'node:dgram';
import { fileURLToPath } from 'node:url';
import { Stub } from './stub.js';

const CLI = fileURLToPath(new URL('../../src/main.js', import.meta.url));
const RC = '/etc/resolv.conf';
const BACKUP = '/etc/resolv.conf.raced-orig';
const mode = process.argv[2] ?? 'file';
const run = promisify(execFile);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const out: Record<string, unknown> = { mode };
const original = readFileSync(RC, 'utf8');

/** What is at /etc/resolv.conf: a link and its target, or a file's mode, owner and text. */
function state(): string {
  const st = lstatSync(RC);
  if (st.isSymbolicLink()) return `link ${readlinkSync(RC)}`;
  return `file ${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid} ${JSON.stringify(readFileSync(RC, 'utf8'))}`;
}
const before = state();
const target = mode === 'symlink' ? readFileSync('/run/systemd/resolve/stub-resolv.conf', 'utf8') : '';
const targetUntouched = (): boolean => mode !== 'symlink' || readFileSync('/run/systemd/resolve/stub-resolv.conf', 'utf8') === target;

async function lookup(name: string, asNobody = false): Promise<string> {
  const cmd = asNobody ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', 'getent', 'ahostsv4', name] : ['getent', 'ahostsv4', name];
  try {
    const { stdout } = await run(cmd[0]!, cmd.slice(1), { timeout: 5000 });
    return stdout.split(/\s+/)[0] ?? '';
  } catch {
    return 'failed';
  }
}

function start(): { child: ChildProcess; log: () => string; ready: Promise<boolean> } {
  const child = spawn('sh', ['-c', `umask 027 && exec "${process.execPath}" "${CLI}" --default-resolver --listen 127.0.0.1:53 --cache-size 0`], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  const ready = (async () => {
    for (let i = 0; i < 100; i++) {
      if (log.includes('now names only raced')) return true;
      if (child.exitCode !== null) return false;
      await sleep(50);
    }
    return false;
  })();
  return { child, log: () => log, ready };
}
const exited = (c: ChildProcess): Promise<number | null> => new Promise((r) => (c.exitCode !== null ? r(c.exitCode) : c.once('exit', (code) => r(code))));

const up = await Stub.start({ host: '127.0.0.2', port: 53, address: '192.0.2.77' });
out.lookupBefore = await lookup('before.takeover.test', true);

// 1. Take-over, lookups through it (also as nobody, under raced's umask 027), restore on SIGTERM.
const a = start();
out.started = await a.ready;
out.duringFile = readFileSync(RC, 'utf8');
out.duringState = state().split(' ').slice(0, 3).join(' ');
out.backupSaved = existsSync(BACKUP) && readFileSync(BACKUP, 'utf8') === original;
out.backupIsLink = lstatSync(BACKUP).isSymbolicLink();
out.lookupsDuring = await Promise.all([1, 2, 3].map((i) => lookup(`n${i}.takeover.test`)));
out.lookupDuringAsNobody = await lookup('nobody.takeover.test', true);
a.child.kill('SIGTERM');
out.exitAfterTerm = await exited(a.child);
out.firstLog = a.log();
out.restoredAfterTerm = state() === before;
out.stateAfterTerm = state();
out.targetUntouched = targetUntouched();
out.backupGoneAfterTerm = !existsSync(BACKUP);
out.lookupAfterTerm = await lookup('after.takeover.test', true);

// 2. Bind failure: 127.0.0.1:53 is taken; resolv.conf is never touched.
const squatter = dgram.createSocket('udp4');
await new Promise<void>((r) => squatter.bind(53, '127.0.0.1', r));
const b = start();
out.bindFailExit = await exited(b.child);
out.bindFailMessage = b.log().trim().split('\n').pop();
out.untouchedAfterBindFailure = state() === before && !existsSync(BACKUP);
await new Promise<void>((r) => squatter.close(() => r()));

// 3. kill -9, then a new start: it must take the original from the backup,
// never name itself as upstream, and restore the original at the end.
const c = start();
out.secondStarted = await c.ready;
c.child.kill('SIGKILL');
await exited(c.child);
out.leftAfterKill9 = readFileSync(RC, 'utf8').startsWith('# Written by raced');
const d = start();
out.restartedAfterCrash = await d.ready;
out.restartLog = d.log();
out.lookupAfterRestart = await lookup('restart.takeover.test');
d.child.kill('SIGTERM');
out.exitAfterRestart = await exited(d.child);
out.restoredAfterCrashCycle = state() === before && !existsSync(BACKUP) && targetUntouched();

// 4. Another program rewrites resolv.conf while raced runs: theirs stays, and the log says so.
const e = start();
out.thirdStarted = await e.ready;
writeFileSync(`${RC}.dhcp`, 'nameserver 127.0.0.2\n# from dhcp\n');
renameSync(`${RC}.dhcp`, RC);
e.child.kill('SIGTERM');
out.exitAfterRewrite = await exited(e.child);
out.keptTheirs = readFileSync(RC, 'utf8') === 'nameserver 127.0.0.2\n# from dhcp\n' && !existsSync(BACKUP);
out.rewriteLog = e.log();
out.upstreamQueries = up.count();

await up.close();
process.stdout.write(JSON.stringify(out) + '\n');
process.exit(0);
