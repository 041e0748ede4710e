// Cache-hit speed and memory, side by side in one run:
//  - saturation QPS on 1,000 names looped (≈100 % hits after warm-up) for the
//    bare Node ceiling (bench/ceiling.ts), raced (one process), dnsmasq
//    --cache-size=10000, and raced --workers 2;
//  - latency p50/p99 at a fixed 10k QPS (dnsperf -v per-query lines);
//  - RSS of raced holding 100,000 cached entries.
//   node dist/bench/cache.js [--seconds N] [--runs N]
import { numArg } from './lib/args.js';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir, cpus } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dnsperf, freePort, startDnsmasq, startNsd, startRaced, waitDns, writeZone, type Proc } from './lib/procs.js';
import { cpuSeconds, median, percentile, rssBytes } from './lib/stats.js';

const seconds = numArg('--seconds', 10);
const runs = numArg('--runs', 3);
/** --memory-only: just the 100,000-entry RSS figure. */
const memoryOnly = process.argv.includes('--memory-only');
const dir = mkdtempSync(join(tmpdir(), 'raced-cache-bench-'));
const SERVER_CPU = '1';
const LOAD_CPU = '0';

async function startCeiling(upstream: number): Promise<Proc> {
  const port = await freePort();
  const script = fileURLToPath(new URL('./ceiling.js', import.meta.url));
  const child = spawn('taskset', ['-c', SERVER_CPU, process.execPath, script, String(port), String(upstream)], { stdio: 'ignore' });
  await waitDns(port).catch((err: Error) => {
    child.kill('SIGKILL');
    throw err;
  });
  return {
    name: 'ceiling',
    child,
    port,
    stop: async () => {
      if (child.exitCode !== null) return;
      const done = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await done;
    },
  };
}

const procs: Proc[] = [];
try {
  const small = writeZone(join(dir, 'small'), 'bench.test', 1000);
  const big = writeZone(join(dir, 'big'), 'big.test', 100_000);
  const nsd = await startNsd(dir, 'bench.test', small.zoneFile, LOAD_CPU);
  const nsd2 = await startNsd(dir, 'big.test', big.zoneFile, LOAD_CPU);
  procs.push(nsd, nsd2);
  const up = [nsd.port];
  const servers: Record<string, () => Promise<Proc>> = {
    'node ceiling (bench/ceiling.ts)': () => startCeiling(nsd.port),
    'raced --cache-size 10000': () => startRaced(up, ['--cache-size', '10000'], SERVER_CPU),
    'dnsmasq --cache-size=10000': () => startDnsmasq(up, ['--cache-size=10000'], SERVER_CPU),
  };
  const qps: Record<string, number[]> = {};
  const cpuUs: Record<string, number[]> = {};
  const p50: Record<string, number[]> = {};
  const p99: Record<string, number[]> = {};
  const commands: Record<string, string> = {};
  for (let run = 0; run < (memoryOnly ? 0 : runs); run++) {
    for (const [name, start] of Object.entries(servers)) {
      const p = await start();
      procs.push(p);
      await dnsperf(p.port, small.queryFile, 2, { cpu: LOAD_CPU }); // warm-up: fills the cache
      const c0 = cpuSeconds(p.child.pid!);
      const sat = await dnsperf(p.port, small.queryFile, seconds, { cpu: LOAD_CPU });
      (cpuUs[name] ??= []).push(((cpuSeconds(p.child.pid!) - c0) / sat.completed) * 1e6);
      (qps[name] ??= []).push(sat.qps);
      commands[name] = sat.command;
      if (!name.startsWith('node ceiling')) {
        const fixed = await dnsperf(p.port, small.queryFile, Math.min(seconds, 5), { cpu: LOAD_CPU, rate: 10000, verbose: true });
        (p50[name] ??= []).push(percentile(fixed.latencies ?? [], 50));
        (p99[name] ??= []).push(percentile(fixed.latencies ?? [], 99));
      }
      process.stderr.write(`run ${run + 1}/${runs} ${name}: ${sat.qps.toFixed(0)} QPS\n`);
      await p.stop();
    }
  }
  // raced with workers on this machine's cores (dnsperf shares them).
  const wres: number[] = [];
  if (!memoryOnly) {
  const wp = await freePort();
  const workers = spawn(process.execPath, ['--max-semi-space-size=4', fileURLToPath(new URL('../src/main.js', import.meta.url)), '--listen', `127.0.0.1:${wp}`, `--server=127.0.0.1:${up[0]}`, '--workers', '2', '--log-level', 'warn'], { stdio: 'ignore' });
  await waitDns(wp);
  await dnsperf(wp, small.queryFile, 2);
  for (let i = 0; i < runs; i++) wres.push((await dnsperf(wp, small.queryFile, seconds, { cpu: LOAD_CPU })).qps);
  workers.kill('SIGTERM');
  await new Promise((r) => workers.once('exit', r));
  }

  // Memory: 100,000 distinct names through raced once, then its RSS.
  const mem = await startRaced([nsd2.port], ['--cache-size', '200000'], SERVER_CPU);
  procs.push(mem);
  const rssEmpty = rssBytes(mem.child.pid!);
  const fill = await dnsperf(mem.port, big.queryFile, 60, { cpu: LOAD_CPU, outstanding: 200, rate: 40000, once: true });
  // V8 gives memory back once allocation stops (its memory reducer runs a
  // full GC after a quiet spell): report RSS right after the fill and once settled.
  await new Promise((r) => setTimeout(r, 1000));
  const rssFull = rssBytes(mem.child.pid!);
  await new Promise((r) => setTimeout(r, 15000));
  const rssSettled = rssBytes(mem.child.pid!);
  await mem.stop();

  const med = (o: Record<string, number[]>, k: string, digits = 0): number => Number(median(o[k] ?? []).toFixed(digits));
  const names = Object.keys(servers);
  const [ceil, raced, dnsmasq] = names as [string, string, string];
  const report = {
    date: new Date().toISOString(),
    machine: { cores: cpus().length, cpu: cpus()[0]?.model, node: process.version },
    seconds,
    runs,
    pinning: 'server on CPU 1; dnsperf and nsd on CPU 0',
    hitQps: Object.fromEntries(names.map((n) => [n, { median: med(qps, n), runs: (qps[n] ?? []).map(Math.round), cpuUsPerQuery: med(cpuUs, n, 1) }])),
    racedOverCeiling: memoryOnly ? NaN : Number((median(qps[raced]) / median(qps[ceil])).toFixed(2)),
    racedOverDnsmasq: memoryOnly ? NaN : Number((median(qps[raced]) / median(qps[dnsmasq])).toFixed(2)),
    latencyAt10kQpsMs: Object.fromEntries([raced, dnsmasq].map((n) => [n, { p50: med(p50, n, 3), p99: med(p99, n, 3) }])),
    workers2: { medianQps: Math.round(median(wres)), runs: wres.map(Math.round), overDnsmasq: Number((median(wres) / median(qps[dnsmasq])).toFixed(2)), note: 'raced --workers 2 unpinned; dnsperf pinned to CPU 0 shares a core with one worker and nsd' },
    memory: { entries: fill.completed, lost: fill.lost, rssEmptyMB: Math.round(rssEmpty / 2 ** 20), rssFullMB: Math.round(rssFull / 2 ** 20), rssSettledMB: Math.round(rssSettled / 2 ** 20) },
    commands,
  };
  const outDir = join(process.cwd(), 'bench', 'results');
  mkdirSync(outDir, { recursive: true });
  if (!memoryOnly) writeFileSync(join(outDir, 'cache.json'), JSON.stringify(report, null, 2));
  console.log(JSON.stringify(report, null, 2));
} finally {
  for (const p of procs.reverse()) await p.stop();
  rmSync(dir, { recursive: true, force: true });
}
