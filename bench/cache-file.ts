// --cache-file with 100,000 entries: how long raced takes to load them at
// start and to save them, and the largest pause in answering while a save
// runs. raced runs as its own process (the cache file is made here, then
// loaded by raced at start); this process asks for cached names over UDP at a
// bounded rate and times every answer, while `raced cache save` runs.
//   node dist/bench/cache-file.js [--entries N] [--seconds S] [--qps Q]
import { numArg } from './lib/args.js';
import { chownSync, mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { performance } from 'node:perf_hooks';
import { freePort, RACED_CLI, sleep } from './lib/procs.js';
import { percentile } from './lib/stats.js';
import { AnswerCache } from '../src/cache/cache.js';
import { encodeEntries } from '../src/cache/persist.js';
import { scanMessage } from '../src/wire/message.js';
import { sendCommand } from '../src/control.js';

const entries = numArg('--entries', 100_000);
const seconds = numArg('--seconds', 8);
const qps = numArg('--qps', 5000);
const dir = mkdtempSync(join(tmpdir(), 'raced-cachefile-bench-'));
// Started as root, raced runs as nobody: the directory must be its to write.
if (process.getuid?.() === 0) chownSync(dir, 65534, 65534);
const file = join(dir, 'cache');
const sock = join(dir, 'ctl');

function wireName(i: number): Buffer {
  const label = Buffer.from(`host${i}`, 'latin1');
  return Buffer.concat([Buffer.from([label.length]), label, Buffer.from('\x05bench\x07example\x00', 'latin1')]);
}

// The file raced loads: `entries` A answers, TTL 3600, as a save would write them.
{
  const cache = new AnswerCache({ size: entries, maxBytes: 1 << 30, minTtl: 0, maxTtl: 86400, negCache: true, negTtl: -1, serveStale: 0, prefetch: false });
  const now = performance.now();
  for (let i = 0; i < entries; i++) {
    const name = wireName(i);
    const r = Buffer.concat([Buffer.from([0, 0, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]), name, Buffer.from([0, 1, 0, 1, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4, 192, 0, 2, i % 250])]);
    const scan = scanMessage(r, true)!;
    cache.store(r.toString('latin1', 12, scan.qEnd) + '\x00', r, scan, now);
  }
  writeFileSync(file, Buffer.concat(await encodeEntries(cache.snapshot(), Date.now(), performance.now())), { mode: 0o600 });
}

const port = await freePort();
const dead = await freePort();
const child = spawn(
  process.execPath,
  ['--max-semi-space-size=4', RACED_CLI, '--listen', `127.0.0.1:${port}`, '--server', `127.0.0.1:${dead}`, '--cache-size', String(entries), '--cache-max-bytes', '1g', '--cache-file', file, '--cache-save-interval', '0', '--control-socket', sock, '--log-level', 'debug'],
  { stdio: ['ignore', 'ignore', 'pipe'] },
);
let log = '';
child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
const t0 = Date.now();
while (!log.includes('control socket on')) {
  if (child.exitCode !== null || Date.now() - t0 > 30000) throw new Error(`raced did not start: ${log}`);
  await sleep(50);
}
const loadLine = /loaded (\d+) entries saved \d+ s ago in (\d+) ms \((\d+) ms CPU\)/.exec(log);

// Load: `qps` queries a second for cached names, each timed; every 2 s a save.
const client = dgram.createSocket('udp4');
await new Promise<void>((r) => client.bind(0, '127.0.0.1', r));
const sent = new Map<number, number>();
const samples: { at: number; ms: number }[] = [];
client.on('message', (msg) => {
  const id = msg.readUInt16BE(0);
  const at = sent.get(id);
  if (at === undefined) return;
  sent.delete(id);
  const now = performance.now();
  samples.push({ at, ms: now - at });
});
let id = 0;
const query = (i: number): Buffer => Buffer.concat([Buffer.from([0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]), wireName(i), Buffer.from([0, 1, 0, 1])]);
const saves: { from: number; to: number; reply: string }[] = [];
const start = performance.now();
const end = start + seconds * 1000;
const tick = 5;
const perTick = Math.max(1, Math.round((qps * tick) / 1000));
const loader = setInterval(() => {
  for (let k = 0; k < perTick; k++) {
    id = (id + 1) & 0xffff;
    const q = query(Math.floor(Math.random() * entries));
    q.writeUInt16BE(id, 0);
    sent.set(id, performance.now());
    client.send(q, port, '127.0.0.1');
  }
}, tick);
await sleep(1000);
while (performance.now() < end - 1500) {
  const from = performance.now();
  // Straight over the socket: starting a `raced cache save` process would itself take CPU from raced.
  const reply = await sendCommand(sock, 'cache save');
  saves.push({ from, to: performance.now(), reply: reply.trim() });
  await sleep(1500);
}
await sleep(Math.max(0, end - performance.now()));
clearInterval(loader);
await sleep(300);
client.close();
child.kill('SIGTERM');
await new Promise((r) => child.once('exit', r));

const during = samples.filter((s) => saves.some((v) => s.at + s.ms >= v.from && s.at <= v.to)).map((s) => s.ms);
const outside = samples.filter((s) => !saves.some((v) => s.at + s.ms >= v.from - 200 && s.at <= v.to + 200)).map((s) => s.ms);
const saveLines = [...log.matchAll(/saved (\d+) entries in (\d+) ms \(longest step ([\d.]+) ms\)/g)].map((m) => `${m[2]} (longest step ${m[3]})`);
const fmt = (xs: number[]): string => (xs.length ? `p50 ${percentile(xs, 50).toFixed(2)} ms, p99 ${percentile(xs, 99).toFixed(2)} ms, max ${Math.max(...xs).toFixed(1)} ms (${xs.length} answers)` : '-');
console.log(`entries: ${entries}; load ${qps} q/s of cached names over UDP for ${seconds} s; ${samples.length} answered, ${sent.size} unanswered`);
console.log(`load at start: ${loadLine ? `${loadLine[1]} entries in ${loadLine[2]} ms, ${loadLine[3]} ms CPU` : 'no load line'}`);
console.log(`saves: ${saveLines.join(', ')} ms (raced's own timing, snapshot to rename)`);
console.log(`answers while a save ran: ${fmt(during)}`);
console.log(`answers away from saves:  ${fmt(outside)}`);
rmSync(dir, { recursive: true, force: true });
