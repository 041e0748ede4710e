// Unit tests of the one file watcher (src/watch.ts), used by resolv.conf and
// hosts-file reloading: changes seen, a symlink followed to its new target,
// nothing after stop, and the process never kept alive by a watch.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, symlinkSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { watchPath } from '../src/watch.js';

const INTERVAL = 20;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Waits (bounded) until `calls()` reaches `n`. */
async function until(calls: () => number, n: number): Promise<void> {
  for (let i = 0; i < 200 && calls() < n; i++) await sleep(INTERVAL);
  assert.equal(calls(), n);
}

test('watchPath: a write, a rename over the file, and a symlink re-pointed are each seen; nothing after stop', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'raced-watch-'));
  try {
    const a = join(dir, 'a');
    const b = join(dir, 'b');
    writeFileSync(a, 'one\n');
    writeFileSync(b, 'a different, longer file\n');
    const link = join(dir, 'resolv.conf');
    symlinkSync(a, link);
    let calls = 0;
    const stop = watchPath(link, INTERVAL, () => calls++);
    await sleep(INTERVAL * 3);
    assert.equal(calls, 0, 'no call while nothing changed');
    writeFileSync(a, 'one two\n');
    await until(() => calls, 1);
    // The way resolvconf and NetworkManager replace it: a new symlink renamed over the old one.
    symlinkSync(b, join(dir, 'tmp-link'));
    renameSync(join(dir, 'tmp-link'), link);
    await until(() => calls, 2);
    stop();
    writeFileSync(b, 'changed after stop\n');
    await sleep(INTERVAL * 5);
    assert.equal(calls, 2, 'no call after stop');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('watchPath does not keep the process alive', () => {
  const url = new URL('../src/watch.js', import.meta.url).href;
  const started = Date.now();
  // A persistent watch would never let this child exit: execFileSync would hit its timeout and throw.
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', `const { watchPath } = await import(${JSON.stringify(url)}); watchPath('/etc/hosts', 10, () => {}); process.stdout.write('watching')`], { encoding: 'utf8', timeout: 10_000 });
  assert.equal(out, 'watching');
  assert.ok(Date.now() - started < 10_000);
});
