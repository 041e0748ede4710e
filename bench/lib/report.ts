// Turning bench results into the markdown report and the SVG plots.
import { bars, scatter } from './svg.js';

export interface Row {
  server: 'raced' | 'dnsmasq';
  mode: string;
  cache: boolean;
  scenario: string;
  /** Saturation QPS (healthy scenario only), NaN otherwise. */
  qps: number;
  p50ms: number;
  p95ms: number;
  p99ms: number;
  answered: number;
  upstreamQueriesPerQuery: number;
  upstreamBytesPerQuery: number;
  /** Bytes towards the upstreams per client query (the seed's TX). */
  upstreamTxPerQuery: number;
  upstreamRxPerQuery: number;
  cpuUsPerQuery: number;
  rssMB: number;
  /** NXDOMAIN replies per 1,000 client queries; every name exists, so each is a wrong answer. */
  wrongPer1000: number;
}

export interface Report {
  date: string;
  machine: Record<string, unknown>;
  settings: Record<string, unknown>;
  commands: string[];
  rows: Row[];
}

export function configName(r: Pick<Row, 'server' | 'mode' | 'cache'>): string {
  return `${r.server} ${r.mode}${r.cache ? ' +cache' : ''}`;
}

const f = (v: number, d = 2): string => (Number.isFinite(v) ? v.toFixed(d) : '-');
const kib = (bytes: number): string => (bytes >= 1024 * 1024 ? `${(bytes / 2 ** 20).toFixed(1)} MiB` : `${(bytes / 1024).toFixed(1)} KiB`);

/**
 * The seed's table: upstream traffic for 100,000 client queries, healthy
 * upstreams, all-servers versus a single upstream versus caching.
 */
export function seedTable(rows: Row[]): string {
  const pick = (server: string, mode: string, cache: boolean): Row | undefined =>
    rows.find((r) => r.server === server && r.mode === mode && r.cache === cache && r.scenario === 'healthy');
  const lines = ['| server | setting | upstream TX per 100k queries | upstream RX per 100k queries | upstream queries per client query |', '|---|---|---|---|---|'];
  const variants: [string, string, boolean, string][] = [
    ['dnsmasq', 'all-servers', false, '--all-servers --cache-size=0'],
    ['dnsmasq', 'default', false, 'default mode, --cache-size=0'],
    ['dnsmasq', 'all-servers', true, '--all-servers, cache on'],
    ['raced', 'all', false, '--all-servers --cache-size 0'],
    ['raced', 'hedged', false, '--strategy hedged --cache-size 0'],
    ['raced', 'ordered', false, '--strict-order --cache-size 0'],
    ['raced', 'all', true, '--all-servers, cache on'],
  ];
  for (const [server, mode, cache, label] of variants) {
    const r = pick(server, mode, cache);
    if (!r) continue;
    lines.push(`| ${server} | ${label} | ${kib(r.upstreamTxPerQuery * 1e5)} | ${kib(r.upstreamRxPerQuery * 1e5)} | ${f(r.upstreamQueriesPerQuery)} |`);
  }
  return lines.join('\n');
}

export function renderMarkdown(rep: Report): string {
  const out: string[] = [];
  out.push(`# raced bench report — ${rep.date}`, '');
  out.push('## Machine and settings', '');
  for (const [k, v] of Object.entries({ ...rep.machine, ...rep.settings })) out.push(`- ${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`);
  out.push('', '## Upstream traffic (the five-nines write-up\'s table, for dnsmasq and raced)', '', seedTable(rep.rows), '');
  out.push('## Every scenario', '');
  out.push('| server | cache | scenario | QPS (saturation) | p50 ms | p95 ms | p99 ms | answered | wrong NXDOMAIN /1000 | upstream q/q | upstream B/q | CPU µs/q | RSS MB |');
  out.push('|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of rep.rows) {
    out.push(
      `| ${r.server} ${r.mode} | ${r.cache ? 'on' : '0'} | ${r.scenario} | ${Number.isFinite(r.qps) ? Math.round(r.qps) : '-'} | ${f(r.p50ms, 3)} | ${f(r.p95ms, 3)} | ${f(r.p99ms, 3)} | ${f(100 * r.answered, 1)}% | ${Number.isFinite(r.wrongPer1000) ? f(r.wrongPer1000, 1) : '-'} | ${f(r.upstreamQueriesPerQuery)} | ${Math.round(r.upstreamBytesPerQuery)} | ${f(r.cpuUsPerQuery, 1)} | ${Math.round(r.rssMB)} |`,
    );
  }
  out.push('', '## Plots', '', '![upstream bytes per query against p99](tradeoff.svg)', '', '![saturation QPS](qps.svg)', '');
  out.push('## Commands', '', ...rep.commands.map((c) => `    ${c}`), '');
  return out.join('\n');
}

export function tradeoffSvg(rows: Row[]): string {
  return scatter(
    rows.map((r) => ({ x: Math.round(r.upstreamBytesPerQuery), y: r.p99ms, label: configName(r), series: r.scenario })),
    { title: 'What racing costs and buys: upstream bytes per client query vs client p99', xLabel: 'upstream bytes per client query (counted at the upstreams)', yLabel: 'client p99 latency (ms)' },
  );
}

export function qpsSvg(rows: Row[]): string {
  return bars(
    rows.filter((r) => Number.isFinite(r.qps)).map((r) => ({ label: `${configName(r)} (${r.scenario})`, value: r.qps })),
    { title: 'Saturation QPS, healthy upstreams', unit: 'QPS' },
  );
}
