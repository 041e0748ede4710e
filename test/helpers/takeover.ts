// --default-resolver, run inside a private mount and network namespace
// (see takeover.test.ts) where /etc/resolv.conf is a bind mount of a scratch
// file. Upstream: a stand-in on 127.0.0.2:53 named by the original file.
// Prints one JSON object with what was observed at each step.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { readFileSync, existsSync } from 'node:fs';
import dgram from 'node:dgram';
import { fileURLToPath } from 'node:url';
import { Stub } from './stub.js';

const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));
const RC = '/etc/resolv.conf';
const BACKUP = '/etc/resolv.conf.raced-orig';
const run = promisify(execFile);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const out: Record<string, unknown> = {};
const original = readFileSync(RC, 'utf8');

async function lookup(name: string): Promise<string> {
  try {
    const { stdout } = await run('getent', ['ahostsv4', name], { timeout: 5000 });
    return stdout.split(/\s+/)[0] ?? '';
  } catch {
    return 'failed';
  }
}

function start(): { child: ChildProcess; log: () => string; ready: Promise<boolean> } {
  const child = spawn(process.execPath, [CLI, '--default-resolver', '--listen', '127.0.0.1:53', '--cache-size', '0'], { stdio: ['ignore', 'ignore', 'pipe'] });
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

// 1. Take-over, lookups through it, restore on SIGTERM.
const a = start();
out.started = await a.ready;
out.duringFile = readFileSync(RC, 'utf8');
out.backupSaved = existsSync(BACKUP) && readFileSync(BACKUP, 'utf8') === original;
out.lookupsDuring = await Promise.all([1, 2, 3].map((i) => lookup(`n${i}.takeover.test`)));
a.child.kill('SIGTERM');
out.exitAfterTerm = await exited(a.child);
out.restoredAfterTerm = readFileSync(RC, 'utf8') === original;
out.backupGoneAfterTerm = !existsSync(BACKUP);
out.lookupAfterTerm = await lookup('after.takeover.test');

// 2. Bind failure: 127.0.0.1:53 is taken; resolv.conf is never touched.
const squatter = dgram.createSocket('udp4');
await new Promise<void>((r) => squatter.bind(53, '127.0.0.1', r));
const b = start();
out.bindFailExit = await exited(b.child);
out.bindFailMessage = b.log().trim().split('\n').pop();
out.untouchedAfterBindFailure = readFileSync(RC, 'utf8') === original && !existsSync(BACKUP);
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
out.restoredAfterCrashCycle = readFileSync(RC, 'utf8') === original && !existsSync(BACKUP);
out.upstreamQueries = up.count();

await up.close();
process.stdout.write(JSON.stringify(out) + '\n');
process.exit(0);
