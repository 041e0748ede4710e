// `raced status`: one line per upstream read from a running raced's /metrics.
import type { Prediction } from './tradeoff/estimate.js';
import { histogramQuantile } from './upstream/stats.js';

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses the Prometheus text format (enough of it for raced's own output). */
export function parseMetrics(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!.replace(/\\(.)/g, '$1');
    out.push({ name: m[1]!, labels, value: m[3] === '+Inf' ? Infinity : Number(m[3]) });
  }
  return out;
}

/** Quantile from cumulative histogram buckets, interpolated inside the bucket (as histogram_quantile does). */
/** The q-quantile of a scraped (cumulative) histogram: raced's one histogram quantile on per-bucket counts. */
export function bucketQuantile(buckets: { le: number; count: number }[], q: number): number {
  const sorted = [...buckets].sort((a, b) => a.le - b.le);
  const bounds: number[] = [];
  const counts: number[] = [];
  let prev = 0;
  for (const b of sorted) {
    if (Number.isFinite(b.le)) bounds.push(b.le);
    counts.push(b.count - prev);
    prev = b.count;
  }
  if (counts.length === bounds.length) counts.push(0);
  return histogramQuantile(bounds, counts, q);
}

function ms(seconds: number): string {
  return Number.isNaN(seconds) ? '-' : `${(seconds * 1000).toFixed(seconds < 0.01 ? 2 : 1)}ms`;
}

export function formatStatus(samples: Sample[]): string {
  const get = (name: string, pred: (l: Record<string, string>) => boolean = () => true): Sample[] =>
    samples.filter((s) => s.name === name && pred(s.labels));
  const sum = (name: string, pred?: (l: Record<string, string>) => boolean): number => get(name, pred).reduce((a, s) => a + s.value, 0);
  const upstreams = get('raced_upstream_queries_total').map((s) => s.labels.upstream!);
  const totalWins = sum('raced_upstream_wins_total');
  const recentWins = sum('raced_upstream_recent_wins');
  const hasRecent = get('raced_upstream_recent_wins').length > 0;
  const share = (n: number, of: number): string => (of > 0 ? `${((100 * n) / of).toFixed(0)}%` : '-');
  const lines: string[] = [];
  const width = Math.max(8, ...upstreams.map((u) => u.length));
  // Totals since start, then the last minute: an upstream that recovered shows it at once.
  lines.push(
    `${''.padEnd(width)}  ${''.padEnd(7)}  ${'since start'.padEnd(34)}` + (hasRecent ? `  ${'last minute'}` : ''),
  );
  lines.push(
    `${'upstream'.padEnd(width)}  state    queries    wins  p50      p95     ` +
      (hasRecent ? `  queries    wins  p50      p95    ` : '') +
      `  overruled  errors`,
  );
  for (const u of upstreams) {
    const mine = (l: Record<string, string>): boolean => l.upstream === u;
    const up = sum('raced_upstream_up', mine) > 0;
    const failing = sum('raced_upstream_failing', mine) > 0;
    const queries = sum('raced_upstream_queries_total', mine);
    const wins = sum('raced_upstream_wins_total', mine);
    const buckets = get('raced_upstream_duration_seconds_bucket', mine).map((s) => ({ le: s.labels.le === '+Inf' ? Infinity : Number(s.labels.le), count: s.value }));
    const errors = get('raced_upstream_errors_total', mine)
      .filter((s) => s.value > 0)
      .map((s) => `${s.labels.kind}=${s.value}`)
      .join(' ');
    const state = !up ? 'DOWN' : failing ? 'failing' : 'up';
    // Negative answers of this upstream another one's positive answer beat (wrong NXDOMAIN/NODATA).
    const overruled = sum('raced_upstream_overruled_total', mine);
    let recent = '';
    if (hasRecent) {
      const rn = sum('raced_upstream_recent_queries', mine);
      // No query in the window: no figure (summed over --workers, an empty window may read 0, not NaN).
      const rq = (p: string): number => (rn > 0 ? (get(`raced_upstream_recent_p${p}_seconds`, mine)[0]?.value ?? NaN) : NaN);
      recent =
        `  ${String(rn).padStart(7)}  ${share(sum('raced_upstream_recent_wins', mine), recentWins).padStart(6)}` +
        `  ${ms(rq('50')).padEnd(7)}  ${ms(rq('95')).padEnd(7)}`;
    }
    lines.push(
      `${u.padEnd(width)}  ${state.padEnd(7)}  ${String(queries).padStart(7)}  ${share(wins, totalWins).padStart(6)}  ${ms(bucketQuantile(buckets, 0.5)).padEnd(7)}  ${ms(bucketQuantile(buckets, 0.95)).padEnd(7)}` +
        `${recent}  ${String(overruled).padStart(9)}  ${errors || '-'}`,
    );
  }
  // Pooled connections (tcp://, tls://, https://): one line each, only for upstreams that have them.
  for (const u of get('raced_upstream_connections_opened_total').map((x) => x.labels.upstream!)) {
    const mine = (l: Record<string, string>): boolean => l.upstream === u;
    const kinds = (name: string): string =>
      get(name, mine)
        .filter((x) => x.value > 0)
        .map((x) => `${x.labels.kind}=${x.value}`)
        .join(' ') || '-';
    let line =
      `conn ${u}: open ${sum('raced_upstream_connections_open', mine)}, opened ${sum('raced_upstream_connections_opened_total', mine)}, ` +
      `handshakes ${sum('raced_upstream_tls_handshakes_total', mine)} (resumed ${sum('raced_upstream_tls_resumed_total', mine)}), ` +
      `resent ${sum('raced_upstream_resent_total', mine)}, errors ${kinds('raced_upstream_connection_errors_total')}`;
    if (get('raced_upstream_doh_streams_total', mine).length > 0) {
      line += `; streams ${sum('raced_upstream_doh_streams_total', mine)}, goaway ${sum('raced_upstream_doh_goaways_total', mine)}, http errors ${kinds('raced_upstream_doh_http_errors_total')}`;
    }
    if (get('raced_upstream_bootstrap_addresses', mine).length > 0) {
      line += `; bootstrap ${sum('raced_upstream_bootstrap_addresses', mine)} address(es), ${sum('raced_upstream_bootstrap_failures_total', mine)} failures`;
    }
    lines.push(line);
  }
  const clients = sum('raced_queries_total');
  const servfail = sum('raced_queries_total', (l) => l.rcode === 'SERVFAIL');
  const hits = sum('raced_cache_hits_total');
  const races = sum('raced_race_fanout_count');
  const legs = sum('raced_race_fanout_sum');
  lines.push(
    `total: ${clients} client queries, ${servfail} SERVFAIL, cache hits ${hits}, ${races} races, ` +
      `fan-out ${races > 0 ? (legs / races).toFixed(2) : '-'} upstream queries per race, ${sum('raced_race_wasted_total')} wasted`,
  );
  return lines.join('\n');
}

/** Fetches and formats; throws an Error whose message says what went wrong. */
export async function status(url: string): Promise<string> {
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message;
    throw new Error(`cannot reach raced at ${url} (${cause}); is it running with --metrics-listen?`);
  }
  if (!res.ok) throw new Error(`${url} answered HTTP ${res.status}`);
  const samples = parseMetrics(await res.text());
  if (!samples.some((s) => s.name === 'raced_build_info')) throw new Error(`${url} does not look like raced's metrics`);
  return formatStatus(samples);
}

/** GET /tradeoffs as served: one row per option (the field names are the contract). */
type TradeoffRow = Prediction;

/** `raced status --tradeoffs`: one line per option, the one in use marked with `*`. */
export function formatTradeoffs(report: { window: { races: number; seconds: number }; target_ms: number | null; chosen: string | null; options: TradeoffRow[] }): string {
  const num = (v: number | null, d: number): string => (v === null ? '-' : v.toFixed(d));
  const head = ['', 'option', 'p50 ms', 'p95 ms', 'p99 ms', 'answered', 'upstream q/q', 'bytes/q'];
  const rows = report.options.map((r) => [
    r.option === report.chosen ? '*' : '',
    r.option,
    num(r.p50_ms, 1),
    num(r.p95_ms, 1),
    num(r.p99_ms, 1),
    r.answered_share === null ? '-' : `${(r.answered_share * 100).toFixed(1)}%`,
    num(r.upstream_queries_per_query, 2),
    num(r.upstream_bytes_per_query, 0),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i <= 1 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd();
  const out = [
    `predicted from ${report.window.races} races over ${report.window.seconds} s` +
      (report.target_ms !== null ? `; auto's latency target p99 ${report.target_ms} ms` : '') +
      (report.chosen !== null ? `; in use: ${report.chosen} (*)` : ''),
    line(head),
    ...rows.map(line),
  ];
  if (rows.length === 0) out.push('(no predictions yet: the window has no finished races)');
  return out.join('\n');
}

/** Fetches /tradeoffs beside the given /metrics URL and formats it. */
export async function statusTradeoffs(metricsUrl: string): Promise<string> {
  const url = new URL(metricsUrl);
  url.pathname = url.pathname.replace(/\/metrics\/?$/, '') + '/tradeoffs';
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message;
    throw new Error(`cannot reach raced at ${url.href} (${cause}); is it running with --metrics-listen?`);
  }
  if (!res.ok) throw new Error(`${url.href} answered HTTP ${res.status}`);
  const body = (await res.json().catch(() => null)) as Parameters<typeof formatTradeoffs>[0] | null;
  if (body === null || !Array.isArray(body.options) || typeof body.window !== 'object') throw new Error(`${url.href} does not look like raced's trade-offs`);
  return formatTradeoffs(body);
}
