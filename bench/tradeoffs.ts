// Does the trade-off engine predict what each option does? Three upstreams
// (nsd behind fault proxies that add latency, tails, silence), raced
// `--strategy all` at a fixed rate: its GET /tradeoffs is the prediction.
// Then each option runs for real (`--explore-share 0`, so it is only
// itself), measured at the client (dnsperf) and at the upstreams (the
// proxies count queries): error on p99 and on upstream queries per query.
// auto for two targets and dnsmasq --all-servers go on the same frontier.
//   node dist/bench/tradeoffs.js [--seconds N] [--rate QPS] [--scenario NAME]...
import type { Prediction } from '../src/tradeoff/estimate.js';
import { numArg } from './lib/args.js';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir, cpus } from 'node:os';
import { join } from 'node:path';
import { dnsperf, freePort, sleep, startDnsmasq, startNsd, startRaced, writeZone, type Proc } from './lib/procs.js';
import { FaultProxy, type Faults } from './lib/fault-proxy.js';
import { percentile } from './lib/stats.js';
import { scatter, type Point } from './lib/svg.js';

const seconds = numArg('--seconds', 10);
const rate = numArg('--rate', 150);
const TIMEOUT_MS = 2000;
const TRY_TIMEOUT_MS = 300;
const dir = mkdtempSync(join(tmpdir(), 'raced-tradeoffs-'));

const ok = (ms: number): Faults => ({ delayMs: ms, jitterMs: ms / 2, dead: false, servfailRate: 0 });
/** The case: A 2–4 ms with 5 % 120 ms late, B 8–12 ms with 3 % late, C 40–60 ms. */
const SCENARIOS: Record<string, Faults[]> = {
  'tail-heavy': [
    { ...ok(2), jitterMs: 2, lateShare: 0.05, lateMs: 120 },
    { ...ok(8), jitterMs: 4, lateShare: 0.03, lateMs: 120 },
    { ...ok(40), jitterMs: 20 },
  ],
  healthy: [ok(2), ok(8), ok(40)],
  dead: [{ ...ok(2), dead: true }, ok(8), ok(40)],
};
const chosenScenarios = process.argv.flatMap((a, i) => (process.argv[i - 1] === '--scenario' ? [a] : []));
const scenarios = chosenScenarios.length > 0 ? chosenScenarios : ['tail-heavy'];

type Row = Prediction;

/** raced flags that run one option by itself. */
function flagsFor(option: string): string[] | null {
  if (option === 'all') return ['--strategy', 'all'];
  const top = /^top-(\d+)$/.exec(option);
  if (top) return ['--strategy', 'top-k', '--race-width', top[1]!, '--explore-share', '0'];
  const at = /^hedged@(\d+)ms$/.exec(option);
  if (at) return ['--strategy', 'hedged', '--hedge-delay', at[1]!, '--explore-share', '0'];
  if (option === 'hedged') return ['--strategy', 'hedged', '--explore-share', '0'];
  if (option === 'ordered') return ['--strategy', 'ordered'];
  return null;
}

const procs: Proc[] = [];
const proxies: FaultProxy[] = [];
try {
  const { zoneFile, queryFile } = writeZone(dir, 'bench.test', 1000);
  for (let i = 0; i < 3; i++) {
    const n = await startNsd(dir, 'bench.test', zoneFile, '0');
    procs.push(n);
    proxies.push(await FaultProxy.start(n.port));
  }
  const ports = proxies.map((p) => p.port);
  const base = ['--cache-size', '0', '--timeout', String(TIMEOUT_MS), '--try-timeout', String(TRY_TIMEOUT_MS)];

  /** One measured run: warm-up, then `seconds` at `rate`; upstream queries counted at the proxies. */
  const measure = async (p: Proc, warmS: number): Promise<{ p50: number; p95: number; p99: number; qpq: number; answered: number }> => {
    await dnsperf(p.port, queryFile, warmS, { cpu: '0', rate });
    for (const x of proxies) x.resetCounters();
    const r = await dnsperf(p.port, queryFile, seconds, { cpu: '0', rate, verbose: true });
    const lat = r.latencies ?? [];
    const up = proxies.reduce((a, x) => a + x.queries, 0);
    return { p50: percentile(lat, 50), p95: percentile(lat, 95), p99: percentile(lat, 99), qpq: up / r.sent, answered: r.completed / r.sent };
  };
  const tradeoffs = async (mport: number): Promise<{ chosen: string | null; options: Row[]; window: { races: number } }> =>
    (await (await fetch(`http://127.0.0.1:${mport}/tradeoffs`)).json()) as { chosen: string | null; options: Row[]; window: { races: number } };

  const report: Record<string, unknown>[] = [];
  for (const scenario of scenarios) {
    const faults = SCENARIOS[scenario];
    if (!faults) throw new Error(`unknown scenario ${scenario} (${Object.keys(SCENARIOS).join(', ')})`);
    faults.forEach((f, i) => (proxies[i]!.faults = f));
    // The prediction: an `all` run's own window.
    const mport = await freePort();
    const allRun = await startRaced(ports, [...base, '--strategy', 'all', '--metrics-listen', `127.0.0.1:${mport}`], '1');
    await measure(allRun, 3);
    await sleep(TIMEOUT_MS + 2500);
    const predicted = await tradeoffs(mport);
    await allRun.stop();
    process.stderr.write(`${scenario}: predicted from ${predicted.window.races} races\n`);

    const rows: Record<string, unknown>[] = [];
    const points: Point[] = [];
    for (const pr of predicted.options) {
      const flags = flagsFor(pr.option);
      if (!flags || pr.p99_ms === null) continue;
      // `all` is measured again by itself: the prediction run's own first seconds include raced's warm-up.
      const m = await (async () => {
        const p = await startRaced(ports, [...base, ...flags], '1');
        try {
          return await measure(p, 3);
        } finally {
          await p.stop();
        }
      })();
      const p99Err = Math.abs(pr.p99_ms - m.p99);
      const qErr = Math.abs(pr.upstream_queries_per_query! - m.qpq);
      const row = {
        option: pr.option,
        predictedP99: pr.p99_ms,
        measuredP99: m.p99,
        p99Ok: p99Err <= Math.max(2, 0.15 * m.p99),
        predictedQpq: pr.upstream_queries_per_query,
        measuredQpq: Number(m.qpq.toFixed(3)),
        qpqOk: qErr <= 0.05,
        predictedP50: pr.p50_ms,
        measuredP50: m.p50,
        measuredAnswered: Number(m.answered.toFixed(4)),
      };
      rows.push(row);
      points.push({ x: pr.upstream_queries_per_query!, y: pr.p99_ms, label: pr.option, series: 'predicted (from an all run)' });
      points.push({ x: m.qpq, y: m.p99, label: pr.option, series: 'measured' });
      process.stderr.write(`${scenario} / ${pr.option}: p99 ${pr.p99_ms} predicted, ${m.p99} measured; q/q ${pr.upstream_queries_per_query} / ${m.qpq.toFixed(3)}\n`);
    }
    // auto for two targets: past its warm-up (AUTO_MIN_RACES, the timeout, a tick) before measuring.
    const autoRows: Record<string, unknown>[] = [];
    const allP99 = predicted.options.find((o) => o.option === 'all')?.p99_ms ?? 20;
    for (const target of [Math.max(5, Math.ceil(allP99 * 1.5)), Math.max(10, Math.ceil(allP99 * 4))]) {
      const ap = await freePort();
      const p = await startRaced(ports, [...base, '--strategy', 'auto', '--latency-target', String(target), '--metrics-listen', `127.0.0.1:${ap}`], '1');
      // What auto ran, sampled every second of the measured run.
      const seen: Record<string, number> = {};
      let sampling = false;
      const sampler = setInterval(() => {
        if (!sampling) return;
        void tradeoffs(ap)
          .then((t) => (seen[t.chosen ?? 'null'] = (seen[t.chosen ?? 'null'] ?? 0) + 1))
          .catch(() => {});
      }, 1000);
      try {
        await dnsperf(p.port, queryFile, 8, { cpu: '0', rate });
        sampling = true;
        const m = await measure(p, 1);
        sampling = false;
        const t = await tradeoffs(ap);
        autoRows.push({ target, chosen: t.chosen, choicesPerSecond: seen, measuredP99: m.p99, measuredQpq: Number(m.qpq.toFixed(3)), met: m.p99 <= target });
        points.push({ x: m.qpq, y: m.p99, label: `auto ${target} ms: ${t.chosen}`, series: 'auto (measured)' });
        process.stderr.write(`${scenario} / auto ${target} ms: ${t.chosen}, p99 ${m.p99}, q/q ${m.qpq.toFixed(3)}\n`);
      } finally {
        clearInterval(sampler);
        await p.stop();
      }
    }
    // The peer on the same frontier: dnsmasq asks every server.
    const dm = await startDnsmasq(ports, ['--all-servers', '--cache-size=0'], '1');
    try {
      const m = await measure(dm, 3);
      points.push({ x: m.qpq, y: m.p99, label: 'dnsmasq --all-servers', series: 'peers (measured)' });
      autoRows.push({ peer: 'dnsmasq --all-servers --cache-size=0', measuredP99: m.p99, measuredQpq: Number(m.qpq.toFixed(3)) });
    } finally {
      await dm.stop();
    }
    const outDir = join(process.cwd(), 'bench', 'results');
    mkdirSync(outDir, { recursive: true });
    writeFileSync(
      join(outDir, `tradeoffs-${scenario}.svg`),
      scatter(points, { title: `Frontier, ${scenario}: upstream queries per query vs p99`, xLabel: 'upstream queries per client query', yLabel: 'p99 ms' }),
    );
    report.push({ scenario, faults, predictedFromRaces: predicted.window.races, predicted: predicted.options, rows, auto: autoRows });
  }
  const out = { date: new Date().toISOString(), machine: { cores: cpus().length, node: process.version }, seconds, rate, timeoutMs: TIMEOUT_MS, report };
  const outDir = join(process.cwd(), 'bench', 'results');
  writeFileSync(join(outDir, 'tradeoffs.json'), JSON.stringify(out, null, 2));
  console.log(JSON.stringify(out, null, 2));
} finally {
  for (const p of proxies) await p.close();
  for (const p of procs.reverse()) await p.stop();
  rmSync(dir, { recursive: true, force: true });
}
