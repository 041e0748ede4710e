// What metrics cost on the hot path: cache-hit QPS of raced without metrics
// and with --metrics-listen scraped every second, interleaved runs, medians.
//   node dist/bench/metrics-cost.js [--seconds N] [--runs N]
import { numArg } from './lib/args.js';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dnsperf, freePort, startNsd, startRaced, writeZone, type Proc } from './lib/procs.js';
import { median } from './lib/stats.js';

const seconds = numArg('--seconds', 10);
const runs = numArg('--runs', 3);
const dir = mkdtempSync(join(tmpdir(), 'raced-mcost-'));
const procs: Proc[] = [];
try {
  const { zoneFile, queryFile } = writeZone(dir, 'bench.test', 1000);
  const nsd = await startNsd(dir, 'bench.test', zoneFile, '0');
  procs.push(nsd);
  const qps: Record<string, number[]> = { off: [], on: [] };
  for (let run = 0; run < runs; run++) {
    for (const mode of ['off', 'on'] as const) {
      const mport = await freePort();
      const extra = mode === 'on' ? ['--metrics-listen', `127.0.0.1:${mport}`] : [];
      const p = await startRaced([nsd.port], ['--cache-size', '10000', ...extra], '1');
      await dnsperf(p.port, queryFile, 2, { cpu: '0' });
      let scrapes = 0;
      const scraper =
        mode === 'on'
          ? setInterval(() => {
              fetch(`http://127.0.0.1:${mport}/metrics`).then((r) => r.text().then(() => scrapes++), () => {});
            }, 1000)
          : null;
      const r = await dnsperf(p.port, queryFile, seconds, { cpu: '0' });
      if (scraper) clearInterval(scraper);
      qps[mode]!.push(r.qps);
      process.stderr.write(`run ${run + 1}/${runs} metrics ${mode}: ${r.qps.toFixed(0)} QPS${mode === 'on' ? `, ${scrapes} scrapes` : ''}\n`);
      await p.stop();
    }
  }
  const off = median(qps.off);
  const on = median(qps.on);
  const report = { date: new Date().toISOString(), seconds, runs, medianQpsOff: Math.round(off), medianQpsOn: Math.round(on), costShare: Number((1 - on / off).toFixed(3)), qps };
  const outDir = join(process.cwd(), 'bench', 'results');
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'metrics-cost.json'), JSON.stringify(report, null, 2));
  console.log(JSON.stringify(report, null, 2));
} finally {
  for (const p of procs.reverse()) await p.stop();
  rmSync(dir, { recursive: true, force: true });
}
