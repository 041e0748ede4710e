// The bench harness (`npm run bench`, `npm run bench -- --quick`): raced and
// dnsmasq side by side on the same two nsd upstreams — behind fault proxies
// that inject slowness, death and SERVFAILs and count the upstream traffic —
// driven by dnsperf. Writes JSON, a markdown report and SVG plots.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir, cpus, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { dnsperf, startDnsmasq, startNsd, startRaced, writeZone, type Proc } from './lib/procs.js';
import { FaultProxy, type Faults } from './lib/fault-proxy.js';
import { cpuSeconds, median, percentile, rssBytes } from './lib/stats.js';
import { qpsSvg, renderMarkdown, tradeoffSvg, type Report, type Row } from './lib/report.js';

const HELP = `npm run bench -- [options]

  --quick              a smoke run (under 2 minutes): fewer servers and scenarios, 1 run, 3 s each
  --runs N             runs of every combination; medians are reported (default 3)
  --seconds N          length of each measured run (default 8)
  --rate QPS           fixed query rate for the latency runs (default 2000)
  --servers LIST       raced,dnsmasq (default both)
  --scenarios LIST     healthy,slow,dead,dying,flaky,wrong-nxdomain (default all)
  --out DIR            where to write (default bench/results/<date>)
  --install            apt-get install missing tools (dnsperf, dnsmasq, nsd)
  --help               this text

Writes report.json, report.md, tradeoff.svg and qps.svg.`;

interface Args {
  quick: boolean;
  runs: number;
  seconds: number;
  rate: number;
  servers: string[];
  scenarios: string[];
  out: string | null;
  install: boolean;
}

export function parseArgs(argv: string[]): Args | 'help' {
  const a: Args = { quick: false, runs: 3, seconds: 8, rate: 2000, servers: ['raced', 'dnsmasq'], scenarios: Object.keys(SCENARIOS), out: null, install: false };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i]!;
    const v = (): string => {
      const x = argv[++i];
      if (x === undefined) throw new Error(`${k} needs a value`);
      return x;
    };
    const num = (): number => {
      const x = Number(v());
      if (!Number.isFinite(x) || x <= 0) throw new Error(`${k} needs a positive number`);
      return x;
    };
    if (k === '--help' || k === '-h') return 'help';
    else if (k === '--quick') a.quick = true;
    else if (k === '--runs') a.runs = num();
    else if (k === '--seconds') a.seconds = num();
    else if (k === '--rate') a.rate = num();
    else if (k === '--servers') a.servers = v().split(',');
    else if (k === '--scenarios') a.scenarios = v().split(',');
    else if (k === '--out') a.out = v();
    else if (k === '--install') a.install = true;
    else throw new Error(`unknown option ${k} (see --help)`);
  }
  for (const s of a.scenarios) if (!(s in SCENARIOS)) throw new Error(`unknown scenario '${s}' (one of ${Object.keys(SCENARIOS).join(', ')})`);
  for (const s of a.servers) if (s !== 'raced' && s !== 'dnsmasq') throw new Error(`unknown server '${s}' (raced, dnsmasq)`);
  if (a.quick) {
    a.runs = 1;
    a.seconds = 3;
    a.rate = 1000;
    if (!argv.includes('--scenarios')) a.scenarios = ['healthy', 'dead'];
  }
  return a;
}

const HEALTHY: Faults = { delayMs: 1, jitterMs: 1, dead: false, servfailRate: 0 };
/**
 * Faults of the primary (first) upstream; the second stays healthy unless `second` says otherwise.
 * wrong-nxdomain: the primary answers in ~1 ms but says NXDOMAIN for every fifth name (names the
 * second knows, in ~10 ms): every NXDOMAIN a client gets is a wrong answer.
 */
export const SCENARIOS: Record<string, { faults: Faults; second?: Faults; dieHalfway?: boolean }> = {
  healthy: { faults: HEALTHY },
  slow: { faults: { ...HEALTHY, delayMs: 150, jitterMs: 20 } },
  dead: { faults: { ...HEALTHY, dead: true } },
  dying: { faults: HEALTHY, dieHalfway: true },
  flaky: { faults: { ...HEALTHY, servfailRate: 0.3 } },
  'wrong-nxdomain': { faults: { ...HEALTHY, nxdomainEvery: 5 }, second: { ...HEALTHY, delayMs: 10, jitterMs: 2 } },
};

interface ServerConfig {
  server: 'raced' | 'dnsmasq';
  mode: string;
  cache: boolean;
  args: string[];
}

function serverConfigs(a: Args): ServerConfig[] {
  const out: ServerConfig[] = [];
  const racedModes = a.quick ? ['all', 'hedged'] : ['all', 'hedged', 'ordered', 'fastest'];
  const dnsmasqModes: [string, string[]][] = a.quick
    ? [['all-servers', ['--all-servers']], ['default', []]]
    : [['all-servers', ['--all-servers']], ['default', []], ['strict-order', ['--strict-order']]];
  for (const cache of [false, true]) {
    if (a.servers.includes('raced')) {
      for (const m of racedModes) {
        if (a.quick && cache && m !== 'all') continue;
        out.push({ server: 'raced', mode: m, cache, args: ['--strategy', m, '--cache-size', cache ? '10000' : '0', '--timeout', '2000', '--try-timeout', '300'] });
      }
    }
    if (a.servers.includes('dnsmasq')) {
      for (const [m, flags] of dnsmasqModes) {
        if (a.quick && cache && m !== 'all-servers') continue;
        out.push({ server: 'dnsmasq', mode: m, cache, args: [...flags, `--cache-size=${cache ? 10000 : 0}`] });
      }
    }
  }
  return out;
}

function ensureTools(install: boolean): void {
  const missing = [
    ['dnsperf', 'dnsperf'],
    ['dnsmasq', 'dnsmasq'],
    ['nsd', 'nsd'],
    ['taskset', 'util-linux'],
  ].filter(([cmd]) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status !== 0);
  if (missing.length === 0) return;
  const pkgs = missing.map(([, p]) => p!).join(' ');
  if (!install) throw new Error(`missing: ${missing.map(([c]) => c).join(', ')}. Install with: apt-get install -y ${pkgs} (or pass --install)`);
  const r = spawnSync('sh', ['-c', `apt-get install -y ${pkgs}`], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`apt-get install -y ${pkgs} failed`);
}

async function main(): Promise<void> {
  let args: Args | 'help';
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`bench: ${(err as Error).message}\n`);
    process.exit(2);
  }
  if (args === 'help') {
    console.log(HELP);
    return;
  }
  ensureTools(args.install);
  const a = args;
  const pinned = cpus().length >= 2;
  const SERVER_CPU = pinned ? '1' : null;
  const LOAD_CPU = pinned ? '0' : null;
  const date = new Date().toISOString();
  const outDir = resolve(a.out ?? join('bench', 'results', date.replace(/[:.]/g, '-')));
  mkdirSync(outDir, { recursive: true });
  const work = mkdtempSync(join(tmpdir(), 'raced-harness-'));
  const procs: Proc[] = [];
  const proxies: FaultProxy[] = [];
  const commands = new Set<string>();
  try {
    const { zoneFile, queryFile } = writeZone(work, 'bench.test', 1000);
    for (let i = 0; i < 2; i++) {
      const n = await startNsd(work, 'bench.test', zoneFile, LOAD_CPU);
      procs.push(n);
      proxies.push(await FaultProxy.start(n.port));
    }
    const configs = serverConfigs(a);
    const combos = configs.flatMap((c) => a.scenarios.map((s) => ({ c, s })));
    const total = combos.length * a.runs;
    const perCombo = a.seconds + (a.quick ? 1 : 2) + 1;
    const samples = new Map<string, Row[]>();
    const t0 = Date.now();
    let done = 0;
    for (let run = 0; run < a.runs; run++) {
      for (const { c, s } of combos) {
        done++;
        const left = Math.round(((Date.now() - t0) / Math.max(1, done - 1)) * (total - done + 1) / 1000) || perCombo * (total - done + 1);
        process.stderr.write(`[${done}/${total}] ${c.server} ${c.mode}${c.cache ? ' +cache' : ''} / ${s} (run ${run + 1}/${a.runs}), ~${left}s left\n`);
        const row = await measure(c, s, a, queryFile, proxies, SERVER_CPU, LOAD_CPU, commands);
        const key = `${c.server}|${c.mode}|${c.cache}|${s}`;
        samples.set(key, [...(samples.get(key) ?? []), row]);
      }
    }
    const rows = [...samples.values()].map(medianRow);
    const report: Report = {
      date,
      machine: { cores: cpus().length, cpu: cpus()[0]?.model ?? '?', node: process.version, loadavgAtStart: loadavg().map((x) => x.toFixed(2)).join(' ') },
      settings: {
        runs: a.runs,
        seconds: a.seconds,
        rate: a.rate,
        quick: a.quick,
        pinning: pinned ? 'server on CPU 1; dnsperf and nsd on CPU 0' : 'none (one core)',
        upstreams: 'two nsd 4 serving a 1,000-name zone, each behind a counting fault proxy; faults apply to the first',
      },
      commands: [...commands],
      rows,
    };
    writeFileSync(join(outDir, 'report.json'), JSON.stringify(report, null, 2));
    writeFileSync(join(outDir, 'report.md'), renderMarkdown(report));
    writeFileSync(join(outDir, 'tradeoff.svg'), tradeoffSvg(rows));
    writeFileSync(join(outDir, 'qps.svg'), qpsSvg(rows));
    process.stderr.write(`wrote ${outDir}/report.md (and .json, tradeoff.svg, qps.svg) in ${Math.round((Date.now() - t0) / 1000)} s\n`);
  } finally {
    for (const p of proxies) await p.close();
    for (const p of procs.reverse()) await p.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

async function measure(
  c: ServerConfig,
  scenario: string,
  a: Args,
  queryFile: string,
  proxies: FaultProxy[],
  serverCpu: string | null,
  loadCpu: string | null,
  commands: Set<string>,
): Promise<Row> {
  const sc = SCENARIOS[scenario]!;
  proxies[0]!.faults = sc.faults;
  proxies[1]!.faults = sc.second ?? HEALTHY;
  const ports = proxies.map((p) => p.port);
  const p = c.server === 'raced' ? await startRaced(ports, c.args, serverCpu) : await startDnsmasq(ports, c.args, serverCpu);
  try {
    await dnsperf(p.port, queryFile, a.quick ? 1 : 2, { cpu: loadCpu, rate: a.rate }); // warm-up
    for (const x of proxies) x.resetCounters();
    const cpu0 = cpuSeconds(p.child.pid!);
    const dying = sc.dieHalfway ? setTimeout(() => (proxies[0]!.faults = { ...HEALTHY, dead: true }), (a.seconds * 1000) / 2) : null;
    const fixed = await dnsperf(p.port, queryFile, a.seconds, { cpu: loadCpu, rate: a.rate, verbose: true });
    if (dying) clearTimeout(dying);
    commands.add(fixed.command.replace(/-p \d+/, '-p PORT').replace(/-d \S+/, '-d queries.txt'));
    const cpu = cpuSeconds(p.child.pid!) - cpu0;
    const lat = fixed.latencies ?? [];
    const n = Math.max(1, fixed.completed);
    const tx = proxies.reduce((s, x) => s + x.bytesIn, 0);
    const rx = proxies.reduce((s, x) => s + x.bytesOut, 0);
    const upQ = proxies.reduce((s, x) => s + x.queries, 0);
    let qps = NaN;
    if (scenario === 'healthy') qps = (await dnsperf(p.port, queryFile, a.seconds, { cpu: loadCpu })).qps;
    return {
      server: c.server,
      mode: c.mode,
      cache: c.cache,
      scenario,
      qps,
      p50ms: percentile(lat, 50),
      p95ms: percentile(lat, 95),
      p99ms: percentile(lat, 99),
      answered: fixed.sent > 0 ? fixed.completed / fixed.sent : 0,
      upstreamQueriesPerQuery: upQ / n,
      upstreamBytesPerQuery: (tx + rx) / n,
      upstreamTxPerQuery: tx / n,
      upstreamRxPerQuery: rx / n,
      cpuUsPerQuery: (cpu / n) * 1e6,
      rssMB: rssBytes(p.child.pid!) / 2 ** 20,
      // Every name of the zone exists: any NXDOMAIN a client got is wrong.
      wrongPer1000: fixed.rcodes ? (1000 * (fixed.rcodes.NXDOMAIN ?? 0)) / n : NaN,
    };
  } finally {
    await p.stop();
  }
}

/** The median of each figure over runs. */
export function medianRow(rows: Row[]): Row {
  const first = rows[0]!;
  const m = (k: keyof Row): number => median(rows.map((r) => r[k] as number).filter((x) => Number.isFinite(x)));
  return {
    ...first,
    qps: m('qps'),
    p50ms: m('p50ms'),
    p95ms: m('p95ms'),
    p99ms: m('p99ms'),
    answered: m('answered'),
    upstreamQueriesPerQuery: m('upstreamQueriesPerQuery'),
    upstreamBytesPerQuery: m('upstreamBytesPerQuery'),
    upstreamTxPerQuery: m('upstreamTxPerQuery'),
    upstreamRxPerQuery: m('upstreamRxPerQuery'),
    cpuUsPerQuery: m('cpuUsPerQuery'),
    rssMB: m('rssMB'),
    wrongPer1000: m('wrongPer1000'),
  };
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(new URL(import.meta.url).pathname)) {
  main().catch((err: Error) => {
    process.stderr.write(`bench: ${err.message}\n`);
    process.exit(1);
  });
}
