// What each strategy costs in upstream traffic and buys in latency:
// two nsd upstreams behind fault proxies (which count what reaches them),
// raced --cache-size 0 with each strategy, dnsperf at a fixed rate.
// Scenarios: both healthy; the primary slow (150 ms); the primary dead.
//   node dist/bench/strategies.js [--seconds N] [--rate QPS]
import { numArg } from './lib/args.js';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir, cpus } from 'node:os';
import { join } from 'node:path';
import { dnsperf, startNsd, startRaced, writeZone, type Proc } from './lib/procs.js';
import { FaultProxy, type Faults } from './lib/fault-proxy.js';
import { percentile } from './lib/stats.js';

const seconds = numArg('--seconds', 10);
const rate = numArg('--rate', 1000);
const dir = mkdtempSync(join(tmpdir(), 'raced-strat-'));
const healthy: Faults = { delayMs: 1, jitterMs: 1, dead: false, servfailRate: 0 };
const scenarios: Record<string, Faults> = {
  'all healthy': healthy,
  'primary slow (150 ms)': { ...healthy, delayMs: 150 },
  'primary dead': { ...healthy, dead: true },
};
const strategies = ['all', 'hedged', 'ordered', 'fastest'];

const procs: Proc[] = [];
const proxies: FaultProxy[] = [];
try {
  const { zoneFile, queryFile } = writeZone(dir, 'bench.test', 1000);
  for (let i = 0; i < 2; i++) {
    const n = await startNsd(dir, 'bench.test', zoneFile, '0');
    procs.push(n);
    proxies.push(await FaultProxy.start(n.port));
  }
  const rows = [];
  for (const [scenario, primaryFaults] of Object.entries(scenarios)) {
    for (const strategy of strategies) {
      proxies[0]!.faults = primaryFaults;
      proxies[1]!.faults = healthy;
      const raced = await startRaced(
        proxies.map((p) => p.port),
        ['--strategy', strategy, '--cache-size', '0', '--timeout', '2000', '--try-timeout', '300'],
        '1',
      );
      await dnsperf(raced.port, queryFile, 3, { cpu: '0', rate }); // warm-up: latencies learned, health settled
      for (const p of proxies) p.resetCounters();
      const r = await dnsperf(raced.port, queryFile, seconds, { cpu: '0', rate, verbose: true });
      const lat = r.latencies ?? [];
      const upQueries = proxies.reduce((a, p) => a + p.queries, 0);
      const upBytes = proxies.reduce((a, p) => a + p.bytesIn + p.bytesOut, 0);
      rows.push({
        scenario,
        strategy,
        completed: r.completed,
        answeredShare: Number((r.completed / r.sent).toFixed(4)),
        p50ms: percentile(lat, 50),
        p95ms: percentile(lat, 95),
        p99ms: percentile(lat, 99),
        upstreamQueriesPerQuery: Number((upQueries / r.completed).toFixed(3)),
        upstreamBytesPerQuery: Math.round(upBytes / r.completed),
      });
      process.stderr.write(`${scenario} / ${strategy}: p99 ${percentile(lat, 99)} ms, ${(upQueries / r.completed).toFixed(2)} upstream q/q\n`);
      await raced.stop();
    }
  }
  const report = { date: new Date().toISOString(), machine: { cores: cpus().length, node: process.version }, seconds, rate, rows };
  const outDir = join(process.cwd(), 'bench', 'results');
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'strategies.json'), JSON.stringify(report, null, 2));
  console.log(JSON.stringify(report, null, 2));
} finally {
  for (const p of proxies) await p.close();
  for (const p of procs.reverse()) await p.stop();
  rmSync(dir, { recursive: true, force: true });
}
