// What the trade-off window costs the forward path: this build against
// another (the commit before the engine, built elsewhere) side by side, both
// on the server CPU at once with their own dnsperf, same two nsd upstreams,
// `--all-servers --cache-size 0` (every race recorded, two legs each). The
// per-run QPS ratio is the figure: the host's noise hits both alike.
//   node dist/bench/tradeoff-cost.js --base /path/to/base/dist/src/main.js [--seconds N] [--runs N]
// (builds from before the CLI split run from dist/src/cli.js). `--base ceiling`
// puts the bare Node forwarder (bench/forward-ceiling.ts) in the base's place:
// raced / ceiling side by side, the per-core goal of #17.
import { fileURLToPath } from 'node:url';
import { numArg } from './lib/args.js';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir, cpus } from 'node:os';
import { join } from 'node:path';
import { dnsperf, startNodeScript, startNsd, startRaced, writeZone, type Proc } from './lib/procs.js';
import { median } from './lib/stats.js';

const baseAt = process.argv.indexOf('--base');
const base = baseAt > 0 ? process.argv[baseAt + 1] : undefined;
const ceiling = base === 'ceiling';
if (!base || (!ceiling && !existsSync(base))) {
  process.stderr.write('usage: tradeoff-cost --base /path/to/base/dist/src/main.js|ceiling [--seconds N] [--runs N]\n');
  process.exit(2);
}
const seconds = numArg('--seconds', 5);
const runs = numArg('--runs', 3);
const dir = mkdtempSync(join(tmpdir(), 'raced-bench-'));
const twoCores = cpus().length >= 2;
const SERVER_CPU = twoCores ? '1' : null;
const LOAD_CPU = twoCores ? '0' : null;
const ARGS = ['--all-servers', '--cache-size', '0'];

const { zoneFile, queryFile } = writeZone(dir, 'bench.test', 1000);
const procs: Proc[] = [];
try {
  const ups = [await startNsd(dir, 'bench.test', zoneFile, LOAD_CPU), await startNsd(dir, 'bench.test', zoneFile, LOAD_CPU)];
  procs.push(...ups);
  const ports = ups.map((u) => u.port);
  const ratios: number[] = [];
  const pairs: { base: number; window: number }[] = [];
  for (let run = 0; run < runs; run++) {
    // Alternate which starts first, so start order is no advantage.
    const first = run % 2 === 0;
    const startBase = (): Promise<Proc> =>
      ceiling ? startNodeScript('ceiling', fileURLToPath(new URL('./forward-ceiling.js', import.meta.url)), ports.map(String), SERVER_CPU) : startRaced(ports, ARGS, SERVER_CPU, base);
    const a = first ? await startBase() : await startRaced(ports, ARGS, SERVER_CPU);
    const b = first ? await startRaced(ports, ARGS, SERVER_CPU) : await startBase();
    procs.push(a, b);
    const [withBase, withWindow] = first ? [a, b] : [b, a];
    await Promise.all([dnsperf(withBase.port, queryFile, 1, { cpu: LOAD_CPU }), dnsperf(withWindow.port, queryFile, 1, { cpu: LOAD_CPU })]);
    const [rb, rw] = await Promise.all([dnsperf(withBase.port, queryFile, seconds, { cpu: LOAD_CPU }), dnsperf(withWindow.port, queryFile, seconds, { cpu: LOAD_CPU })]);
    ratios.push(rw.qps / rb.qps);
    pairs.push({ base: Math.round(rb.qps), window: Math.round(rw.qps) });
    process.stderr.write(`run ${run + 1}/${runs}: ${ceiling ? "ceiling" : "base"} ${rb.qps.toFixed(0)} QPS, this build ${rw.qps.toFixed(0)} QPS\n`);
    await a.stop();
    await b.stop();
  }
  const report = {
    date: new Date().toISOString(),
    machine: { cores: cpus().length, cpu: cpus()[0]?.model, node: process.version },
    seconds,
    runs,
    base,
    args: ARGS.join(' '),
    pairs,
    ratios: ratios.map((x) => Number(x.toFixed(3))),
    medianRatio: Number(median(ratios).toFixed(3)),
  };
  const outDir = join(process.cwd(), 'bench', 'results');
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'tradeoff-cost.json'), JSON.stringify(report, null, 2));
  console.log(JSON.stringify(report, null, 2));
} finally {
  for (const p of procs.reverse()) await p.stop();
  rmSync(dir, { recursive: true, force: true });
}
