// Forward-path throughput: raced (all-servers, no cache) against
// `dnsmasq --all-servers --cache-size=0`, same two nsd upstreams, same query
// file, dnsperf at saturation, runs interleaved, medians reported.
//   node dist/bench/forward.js [--seconds N] [--runs N]
import { numArg } from './lib/args.js';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir, cpus } from 'node:os';
import { join } from 'node:path';
import { dnsperf, startDnsmasq, startNsd, startRaced, type Proc } from './lib/procs.js';
import { cpuSeconds, median } from './lib/stats.js';

const seconds = numArg('--seconds', 10);
const runs = numArg('--runs', 3);
const dir = mkdtempSync(join(tmpdir(), 'raced-bench-'));
const twoCores = cpus().length >= 2;
const SERVER_CPU = twoCores ? '1' : null;
const LOAD_CPU = twoCores ? '0' : null;

const { zoneFile, queryFile } = (await import('./lib/procs.js')).writeZone(dir, 'bench.test', 1000);
const procs: Proc[] = [];
try {
  const ups = [await startNsd(dir, 'bench.test', zoneFile, LOAD_CPU), await startNsd(dir, 'bench.test', zoneFile, LOAD_CPU)];
  procs.push(...ups);
  const upPorts = ups.map((u) => u.port);
  const servers: Record<string, () => Promise<Proc>> = {
    'dnsmasq --all-servers --cache-size=0': () => startDnsmasq(upPorts, ['--all-servers', '--cache-size=0'], SERVER_CPU),
    'raced --all-servers --cache-size 0': () => startRaced(upPorts, ['--all-servers', '--cache-size', '0'], SERVER_CPU),
  };
  const results: Record<string, { qps: number[]; cpuUsPerQuery: number[]; lost: number[]; command: string }> = {};
  for (let run = 0; run < runs; run++) {
    for (const [name, start] of Object.entries(servers)) {
      const p = await start();
      procs.push(p);
      await dnsperf(p.port, queryFile, 1, { cpu: LOAD_CPU }); // warm-up
      const cpu0 = cpuSeconds(p.child.pid!);
      const r = await dnsperf(p.port, queryFile, seconds, { cpu: LOAD_CPU });
      const cpu = cpuSeconds(p.child.pid!) - cpu0;
      const res = (results[name] ??= { qps: [], cpuUsPerQuery: [], lost: [], command: r.command });
      res.qps.push(r.qps);
      res.lost.push(r.lost);
      res.cpuUsPerQuery.push((cpu / r.completed) * 1e6);
      process.stderr.write(`run ${run + 1}/${runs} ${name}: ${r.qps.toFixed(0)} QPS, lost ${r.lost}\n`);
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
  const ratio = rows[1]!.medianQps / rows[0]!.medianQps;
  const report = {
    date: new Date().toISOString(),
    machine: { cores: cpus().length, cpu: cpus()[0]?.model, node: process.version },
    seconds,
    runs,
    pinning: twoCores ? 'server on CPU 1; dnsperf and both nsd on CPU 0' : 'none',
    rows,
    racedOverDnsmasq: Number(ratio.toFixed(2)),
  };
  const outDir = join(process.cwd(), 'bench', 'results');
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'forward.json'), JSON.stringify(report, null, 2));
  console.log(JSON.stringify(report, null, 2));
} finally {
  for (const p of procs.reverse()) await p.stop();
  rmSync(dir, { recursive: true, force: true });
}
