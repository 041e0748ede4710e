// Forward-path throughput: raced (all-servers, no cache) against
// `dnsmasq --all-servers --cache-size=0` and against the Node ceiling
// (bench/forward-ceiling.ts, a bare forwarder that moves the same datagrams
// and does nothing else), same two nsd upstreams, same query file, dnsperf at
// saturation. Two ways to put them side by side:
// - interleaved: one server at a time on the server CPU, runs alternating;
// - together: two servers on the server CPU at once, each with its own
//   dnsperf, so the host's noise (this is a shared VM) hits both alike; the
//   per-run QPS ratio is the steadier figure.
//   node dist/bench/forward.js [--seconds N] [--runs N] [--together-runs N]
import { numArg } from './lib/args.js';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir, cpus } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { dnsperf, startDnsmasq, startNodeScript, startNsd, startRaced, writeZone, type Proc } from './lib/procs.js';
import { cpuSeconds, median } from './lib/stats.js';

const seconds = numArg('--seconds', 10);
const runs = numArg('--runs', 3);
const togetherRuns = numArg('--together-runs', runs);
const dir = mkdtempSync(join(tmpdir(), 'raced-bench-'));
const twoCores = cpus().length >= 2;
const SERVER_CPU = twoCores ? '1' : null;
const LOAD_CPU = twoCores ? '0' : null;

const DNSMASQ = 'dnsmasq --all-servers --cache-size=0';
const CEILING = 'node ceiling (bench/forward-ceiling.ts)';
const RACED = 'raced --all-servers --cache-size 0';

const { zoneFile, queryFile } = writeZone(dir, 'bench.test', 1000);
const procs: Proc[] = [];
try {
  const ups = [await startNsd(dir, 'bench.test', zoneFile, LOAD_CPU), await startNsd(dir, 'bench.test', zoneFile, LOAD_CPU)];
  procs.push(...ups);
  const upPorts = ups.map((u) => u.port);
  const ceilingScript = fileURLToPath(new URL('./forward-ceiling.js', import.meta.url));
  const servers: Record<string, () => Promise<Proc>> = {
    [DNSMASQ]: () => startDnsmasq(upPorts, ['--all-servers', '--cache-size=0'], SERVER_CPU),
    [CEILING]: () => startNodeScript('ceiling', ceilingScript, upPorts.map(String), SERVER_CPU),
    [RACED]: () => startRaced(upPorts, ['--all-servers', '--cache-size', '0'], SERVER_CPU),
  };
  const start = async (name: string): Promise<Proc> => {
    const p = await servers[name]!();
    procs.push(p);
    return p;
  };

  const results: Record<string, { qps: number[]; cpuUsPerQuery: number[]; lost: number[]; command: string }> = {};
  for (let run = 0; run < runs; run++) {
    for (const name of Object.keys(servers)) {
      const p = await start(name);
      await dnsperf(p.port, queryFile, 1, { cpu: LOAD_CPU }); // warm-up
      const cpu0 = cpuSeconds(p.child.pid!);
      const r = await dnsperf(p.port, queryFile, seconds, { cpu: LOAD_CPU });
      const cpu = cpuSeconds(p.child.pid!) - cpu0;
      const res = (results[name] ??= { qps: [], cpuUsPerQuery: [], lost: [], command: r.command });
      res.qps.push(r.qps);
      res.lost.push(r.lost);
      res.cpuUsPerQuery.push((cpu / r.completed) * 1e6);
      process.stderr.write(`interleaved ${run + 1}/${runs} ${name}: ${r.qps.toFixed(0)} QPS, lost ${r.lost}\n`);
      await p.stop();
    }
  }
  const rows = Object.entries(results).map(([name, r]) => ({
    server: name,
    medianQps: Math.round(median(r.qps)),
    qps: r.qps.map(Math.round),
    cpuUsPerQuery: Number(median(r.cpuUsPerQuery).toFixed(1)),
    lost: r.lost,
  }));
  const qpsOf = (name: string): number => rows.find((r) => r.server === name)!.medianQps;

  // Together: each pair shares the server CPU for the same seconds.
  const together: { pair: string; ratios: number[]; medianRatio: number }[] = [];
  for (const other of [RACED, CEILING]) {
    const ratios: number[] = [];
    for (let run = 0; run < togetherRuns; run++) {
      const a = await start(DNSMASQ);
      const b = await start(other);
      await Promise.all([dnsperf(a.port, queryFile, 1, { cpu: LOAD_CPU }), dnsperf(b.port, queryFile, 1, { cpu: LOAD_CPU })]);
      const [ra, rb] = await Promise.all([dnsperf(a.port, queryFile, seconds, { cpu: LOAD_CPU }), dnsperf(b.port, queryFile, seconds, { cpu: LOAD_CPU })]);
      ratios.push(rb.qps / ra.qps);
      process.stderr.write(`together ${run + 1}/${togetherRuns} dnsmasq ${ra.qps.toFixed(0)} QPS, ${other} ${rb.qps.toFixed(0)} QPS\n`);
      await a.stop();
      await b.stop();
    }
    together.push({ pair: `${other} / dnsmasq`, ratios: ratios.map((x) => Number(x.toFixed(3))), medianRatio: Number(median(ratios).toFixed(3)) });
  }

  const report = {
    date: new Date().toISOString(),
    machine: { cores: cpus().length, cpu: cpus()[0]?.model, node: process.version },
    seconds,
    runs,
    togetherRuns,
    pinning: twoCores ? 'servers on CPU 1; dnsperf and both nsd on CPU 0' : 'none',
    rows,
    racedOverDnsmasq: Number((qpsOf(RACED) / qpsOf(DNSMASQ)).toFixed(2)),
    ceilingOverDnsmasq: Number((qpsOf(CEILING) / qpsOf(DNSMASQ)).toFixed(2)),
    racedOverCeiling: Number((qpsOf(RACED) / qpsOf(CEILING)).toFixed(2)),
    together,
  };
  const outDir = join(process.cwd(), 'bench', 'results');
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'forward.json'), JSON.stringify(report, null, 2));
  console.log(JSON.stringify(report, null, 2));
} finally {
  for (const p of procs.reverse()) await p.stop();
  rmSync(dir, { recursive: true, force: true });
}
