// Prometheus metrics. The only module that imports prom-client. Nothing is
// counted here: every value is read, when Prometheus scrapes, from the plain
// numbers the pipeline, the races, the cache and the upstreams keep.
import { Registry, type MetricValue } from 'prom-client';
import { rcodeName } from '../wire/constants.js';
import { RATE_LIMIT_ACTIONS } from '../ratelimit.js';
import { SHED_REASONS } from '../server/tcp.js';
import { ERROR_KINDS, LATENCY_BUCKETS, OVERRULED_KINDS, bucketsQuantile } from '../upstream/stats.js';
import type { Pipeline } from '../pipeline.js';
import type { AnswerCache } from '../cache/cache.js';
import type { TcpStats } from '../server/tcp.js';
import type { Tradeoffs } from '../tradeoff/engine.js';
import type { Upstream } from '../upstream/upstream.js';
import { FANOUT_BUCKETS } from '../race.js';
import { FAULT_STAGES, processFaults } from '../guard.js';
import { CONN_ERROR_KINDS, QUERIES_PER_CONN_BUCKETS, type StreamStats } from '../upstream/stream-pool.js';
import { DohPool, HTTP_ERROR_KINDS, type DohStats } from '../upstream/doh-pool.js';

/** A sample; histograms name their series (_bucket, _sum, _count) in metricName, as prom-client does. */
type Values = (MetricValue<string> & { metricName?: string })[];

/** A metric whose values are computed at scrape time from `read`. */
class Computed {
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: 'counter' | 'gauge' | 'histogram',
    private readonly read: () => Values,
    /** How --workers' primary combines the workers' values (prom-client's aggregator names): summed unless said. */
    readonly aggregator: 'sum' | 'min' | 'max' = 'sum',
  ) {}

  get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: Values }> {
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values: this.read() });
  }
}

/** Non-cumulative bucket counts (last slot +Inf) with their sum and count. */
interface Counts {
  readonly buckets: Float64Array;
  readonly sum: number;
  readonly count: number;
}

/** Cumulative Prometheus buckets from non-cumulative counts. */
function histogram(name: string, t: Counts, labels: Record<string, string> = {}, bounds: readonly number[] = LATENCY_BUCKETS): Values {
  const out: Values = [];
  let acc = 0;
  for (let i = 0; i < bounds.length; i++) {
    acc += t.buckets[i]!;
    out.push({ metricName: `${name}_bucket`, labels: { ...labels, le: String(bounds[i]) }, value: acc });
  }
  acc += t.buckets[bounds.length]!;
  out.push({ metricName: `${name}_bucket`, labels: { ...labels, le: '+Inf' }, value: acc });
  out.push({ metricName: `${name}_sum`, labels, value: t.sum });
  out.push({ metricName: `${name}_count`, labels, value: t.count });
  return out;
}

/** RCODEs always exported (as 0 until seen), so dashboards never meet a missing series. */
const COMMON_RCODES = [0, 1, 2, 3, 4, 5];

function byRcode(counts: Float64Array, labels: Record<string, string>): Values {
  const out: Values = [];
  for (let rc = 0; rc < counts.length; rc++) {
    if (counts[rc]! > 0 || COMMON_RCODES.includes(rc)) out.push({ labels: { ...labels, rcode: rcodeName(rc) }, value: counts[rc]! });
  }
  return out;
}

/** DoH (https://) upstreams: streams, GOAWAYs, HTTP failures; and the bootstrap of those named by a host name. */
function dohMetrics(ups: () => readonly Upstream[]): Computed[] {
  const dohs = (): [Upstream, DohStats][] => ups().flatMap((u) => (u.stream instanceof DohPool ? [[u, u.stream.stats] as [Upstream, DohStats]] : []));
  const each = (f: (s: DohStats) => number): (() => Values) => () => dohs().map(([u, s]) => ({ labels: { upstream: u.label }, value: f(s) }));
  const named = (f: (u: Upstream) => number): (() => Values) => () => ups().flatMap((u) => (u.bootstrap ? [{ labels: { upstream: u.label }, value: f(u) }] : []));
  return [
    new Computed('raced_upstream_doh_streams_total', 'HTTP/2 streams (one per query sent) opened to each https:// upstream', 'counter', each((s) => s.streams)),
    new Computed('raced_upstream_doh_goaways_total', 'HTTP/2 GOAWAY frames each https:// upstream sent', 'counter', each((s) => s.goaways)),
    new Computed(
      'raced_upstream_doh_http_errors_total',
      'DoH exchanges that failed on a working connection, by kind: status (not 200), content_type (not application/dns-message), body (no valid DNS reply), reset (stream reset by the server)',
      'counter',
      () => dohs().flatMap(([u, s]) => HTTP_ERROR_KINDS.map((kind) => ({ labels: { upstream: u.label, kind }, value: s.httpErrors[kind] }))),
    ),
    new Computed(
      'raced_upstream_bootstrap_addresses',
      'Addresses the bootstrap resolved for each https://HOST upstream named by a host name (0: not resolved yet, the upstream is down)',
      'gauge',
      named((u) => u.bootstrap!.addresses.length),
      'max',
    ),
    new Computed('raced_upstream_bootstrap_failures_total', "Failed bootstrap resolutions of each https://HOST upstream's name", 'counter', named((u) => u.bootstrap!.failures)),
  ];
}

/** Per-connection figures of the upstreams that use pooled connections (tcp://, tls://, https://). */
function streamMetrics(ups: () => readonly Upstream[]): Computed[] {
  const streams = (): [Upstream, StreamStats][] => ups().flatMap((u) => (u.stream ? [[u, u.stream.stats] as [Upstream, StreamStats]] : []));
  const each = (f: (s: StreamStats) => number): (() => Values) => () => streams().map(([u, s]) => ({ labels: { upstream: u.label }, value: f(s) }));
  return [
    new Computed('raced_upstream_connections_opened_total', 'Connections opened to each tcp://, tls:// or https:// upstream', 'counter', each((s) => s.opened)),
    new Computed('raced_upstream_connections_closed_total', 'Connections to each tcp://, tls:// or https:// upstream that ended, for any reason', 'counter', each((s) => s.closed)),
    new Computed('raced_upstream_connections_open', 'Connections to each tcp://, tls:// or https:// upstream open or being opened now', 'gauge', each((s) => s.opened - s.closed)),
    new Computed('raced_upstream_tls_handshakes_total', 'TLS handshakes completed with each tls:// or https:// upstream', 'counter', each((s) => s.handshakes)),
    new Computed('raced_upstream_tls_resumed_total', 'TLS handshakes that resumed an earlier session', 'counter', each((s) => s.resumed)),
    new Computed('raced_upstream_resent_total', 'Queries sent again because the connection they were on went away (https: or the server refused the stream)', 'counter', each((s) => s.resent)),
    new Computed(
      'raced_upstream_connection_errors_total',
      'Upstream connection failures by kind: connect, handshake, verify (certificate), read_timeout, reset (lost with queries on it)',
      'counter',
      () => streams().flatMap(([u, s]) => CONN_ERROR_KINDS.map((kind) => ({ labels: { upstream: u.label, kind }, value: s.errors[kind] }))),
    ),
    new Computed('raced_upstream_queries_per_connection', 'Queries each closed upstream connection carried', 'histogram', () =>
      streams().flatMap(([u, s]) =>
        histogram('raced_upstream_queries_per_connection', { buckets: s.perConn, sum: s.perConnSum, count: s.closed }, { upstream: u.label }, QUERIES_PER_CONN_BUCKETS),
      ),
    ),
  ];
}

/**
 * What the metrics read: the few parts of the running program they count
 * from (Raced has this shape). An interface, not Raced itself, so metrics
 * depend on the parts and not on the program that assembles them.
 */
export interface MetricsSources {
  readonly pipeline: Pipeline;
  readonly upstreams: readonly Upstream[];
  readonly cache: AnswerCache | null;
  readonly opts: { readonly strategy: string };
  readonly tcpConnections: number;
  readonly tcpStats: TcpStats;
  readonly log: { readonly dropped: number };
  readonly tradeoffs: Tradeoffs;
}

/** The trade-off engine's predictions (GET /tradeoffs) as gauges: one series per option (at most ~22) and quantile. */
function tradeoffMetrics(raced: MetricsSources): Computed[] {
  const t = raced.tradeoffs;
  const s = (ms: number | null): number => (ms === null ? NaN : ms / 1000);
  return [
    new Computed(
      'raced_tradeoff_latency_seconds',
      'Client latency predicted from recent races for each fan-out option (all, top-K, hedged, hedged@Dms, ordered), by quantile; NaN when an upstream it asks is unmeasured',
      'gauge',
      () =>
        t.rows.flatMap((r) => [
          { labels: { option: r.option, quantile: '0.5' }, value: s(r.p50_ms) },
          { labels: { option: r.option, quantile: '0.95' }, value: s(r.p95_ms) },
          { labels: { option: r.option, quantile: '0.99' }, value: s(r.p99_ms) },
        ]),
      'max',
    ),
    new Computed(
      'raced_tradeoff_upstream_queries_per_query',
      'Upstream queries per client query predicted from recent races for each fan-out option',
      'gauge',
      () => t.rows.map((r) => ({ labels: { option: r.option }, value: r.upstream_queries_per_query ?? NaN })),
      'max',
    ),
    new Computed('raced_tradeoff_window_races', 'Races the trade-off predictions are made from (the window)', 'gauge', () => [{ labels: {}, value: t.races }], 'min'),
    new Computed(
      'raced_auto_choice',
      '--strategy auto: 1 for the option in use, 0 for the others predicted',
      'gauge',
      () => {
        if (t.auto === null) return [];
        const chosen = t.auto.chosen;
        const names = t.rows.map((r) => r.option);
        if (!names.includes(chosen)) names.unshift(chosen);
        return names.map((option) => ({ labels: { option }, value: option === chosen ? 1 : 0 }));
      },
      'max',
    ),
    new Computed('raced_explore_races_total', 'Races that asked every healthy upstream to keep the predictions current (--explore-share)', 'counter', () => [
      { labels: {}, value: t.explore.races },
    ]),
  ];
}


export function buildRegistry(raced: MetricsSources, version: string, registry = new Registry()): Registry {
  const p = raced.pipeline;
  const rs = p.raceStats;
  const ups = (): readonly Upstream[] => raced.upstreams;
  const perUpstream = (f: (u: Upstream) => number): Values =>
    ups().map((u) => ({ labels: { upstream: u.label }, value: f(u) }));
  const cache = raced.cache;
  const metrics = [
    new Computed('raced_build_info', 'raced version, Node.js version and strategy; always 1', 'gauge', () => [
      { labels: { version, node: process.versions.node, strategy: raced.opts.strategy }, value: 1 },
    ], 'max'),
    new Computed('raced_queries_total', 'Client queries answered, by transport and reply RCODE', 'counter', () => [
      ...byRcode(p.stats.replies.udp, { transport: 'udp' }),
      ...byRcode(p.stats.replies.tcp, { transport: 'tcp' }),
    ]),
    new Computed('raced_queries_dropped_total', 'Client datagrams dropped without a reply (shorter than a header, or QR=1)', 'counter', () => [
      { labels: {}, value: p.stats.dropped },
    ]),
    new Computed(
      'raced_query_errors_total',
      'Queries dropped after an unexpected exception (a bug, caught so raced lives on), by stage: udp, tcp, pipeline, upstream (a lost leg)',
      'counter',
      () => FAULT_STAGES.map((stage) => ({ labels: { stage }, value: p.guard.counts[stage] })),
    ),
    new Computed('raced_uncaught_errors_total', 'Exceptions and promise rejections nothing else caught, by kind: exception, rejection (logged; raced goes on)', 'counter', () => [
      { labels: { kind: 'exception' }, value: processFaults.exception },
      { labels: { kind: 'rejection' }, value: processFaults.rejection },
    ]),
    new Computed('raced_inflight', 'Client queries waiting for an upstream answer', 'gauge', () => [{ labels: {}, value: p.inflight }]),
    new Computed('raced_request_duration_seconds', 'Time from a client query to raced sending its reply', 'histogram', () =>
      histogram('raced_request_duration_seconds', p.stats.duration),
    ),
    new Computed('raced_upstream_queries_total', 'Queries sent to each upstream', 'counter', () => perUpstream((u) => u.stats.queries)),
    new Computed('raced_upstream_wins_total', 'Races each upstream won (its reply was the one returned)', 'counter', () => perUpstream((u) => u.stats.wins)),
    new Computed('raced_upstream_losses_total', 'Legs sent to each upstream that did not produce the answer', 'counter', () =>
      perUpstream((u) => u.stats.losses),
    ),
    new Computed('raced_upstream_replies_total', 'Valid replies from each upstream, by RCODE', 'counter', () =>
      ups().flatMap((u) => byRcode(u.stats.rcodes, { upstream: u.label })),
    ),
    new Computed('raced_upstream_duration_seconds', 'Time from sending a query to an upstream to its valid reply', 'histogram', () =>
      ups().flatMap((u) => histogram('raced_upstream_duration_seconds', u.stats.latency, { upstream: u.label })),
    ),
    new Computed('raced_upstream_errors_total', 'Upstream failures by kind: timeout, servfail, refused, malformed, mismatch, network, tcp, tls, ignored (--ignore-address), rebind (--stop-dns-rebind), https (DoH: HTTP failure or no connection)', 'counter', () =>
      ups().flatMap((u) => ERROR_KINDS.map((kind) => ({ labels: { upstream: u.label, kind }, value: u.stats.errors[kind] }))),
    ),
    new Computed('raced_upstream_overruled_total', "Negative answers (kind nxdomain or nodata) from this upstream that another upstream's positive answer overruled", 'counter', () =>
      ups().flatMap((u) => OVERRULED_KINDS.map((kind) => ({ labels: { upstream: u.label, kind }, value: u.stats.overruled[kind] }))),
    ),
    new Computed('raced_upstream_bytes_total', 'DNS message bytes exchanged with each upstream', 'counter', () =>
      ups().flatMap((u) => [
        { labels: { upstream: u.label, direction: 'sent' }, value: u.stats.bytesSent },
        { labels: { upstream: u.label, direction: 'received' }, value: u.stats.bytesReceived },
      ]),
    ),
    new Computed('raced_upstream_up', '1 while the upstream answers (raced_upstream_failing says whether with valid answers), 0 while it is down and being probed', 'gauge', () =>
      perUpstream((u) => (u.health.up ? 1 : 0)),
      // Over --workers: up while some worker finds it up.
      'max',
    ),
    new Computed(
      'raced_upstream_failing',
      '1 while the upstream answers, but for 5 s or more only with SERVFAIL or REFUSED (no valid answer)',
      'gauge',
      () => perUpstream((u) => (u.health.up && u.health.failing() ? 1 : 0)),
      // Over --workers: failing only while every worker finds it failing.
      'min',
    ),
    new Computed('raced_upstream_recent_queries', 'Queries sent to each upstream in the last minute', 'gauge', () =>
      perUpstream((u) => u.stats.recent.read().queries),
    ),
    new Computed('raced_upstream_recent_wins', 'Races each upstream won in the last minute', 'gauge', () => perUpstream((u) => u.stats.recent.read().wins)),
    ...([0.5, 0.95] as const).map(
      (q) =>
        new Computed(
          `raced_upstream_recent_p${q * 100}_seconds`,
          `${q === 0.5 ? 'Median' : '95th percentile'} of each upstream's reply time over the last minute (NaN: no reply in it)`,
          'gauge',
          () => perUpstream((u) => bucketsQuantile(u.stats.recent.read().buckets, q)),
          'max',
        ),
    ),
    ...streamMetrics(ups),
    ...dohMetrics(ups),
    new Computed('raced_upstream_inflight', 'Queries sent to each upstream and not yet answered or given up', 'gauge', () =>
      perUpstream((u) => u.stats.inflight),
    ),
    new Computed('raced_race_margin_seconds', 'How much earlier the winner answered than the next valid reply', 'histogram', () =>
      histogram('raced_race_margin_seconds', rs.margin),
    ),
    new Computed('raced_race_fanout', 'Upstream queries sent per race (per client query that went upstream)', 'histogram', () =>
      histogram('raced_race_fanout', { buckets: rs.fanout, sum: rs.legs, count: rs.races }, {}, FANOUT_BUCKETS),
    ),
    new Computed('raced_race_wasted_total', 'Upstream queries whose reply was not the answer (lost, late or never came)', 'counter', () => [
      { labels: {}, value: rs.wasted },
    ]),
    new Computed('raced_races_failed_total', 'Races that ended without a winning reply, by reason', 'counter', () => [
      { labels: { reason: 'lost' }, value: rs.failed },
      { labels: { reason: 'timeout' }, value: rs.timedOut },
    ]),
    new Computed('raced_ratelimited_total', 'Client queries over --rate-limit, by the action taken: refuse, drop, truncate', 'counter', () =>
      RATE_LIMIT_ACTIONS.map((action) => ({ labels: { action }, value: p.rateLimiter?.limited[action] ?? 0 })),
    ),
    new Computed('raced_tcp_connections', 'Client TCP connections open now', 'gauge', () => [{ labels: {}, value: raced.tcpConnections }]),
    new Computed(
      'raced_tcp_connections_shed_total',
      'Client TCP connections raced closed or would not take, by reason: cap, per_client, partial, idle, stalled, refused',
      'counter',
      () => SHED_REASONS.map((reason) => ({ labels: { reason }, value: raced.tcpStats.shed[reason] })),
    ),
    new Computed('raced_coalesced_total', 'Client queries that joined a race already in flight for the same question', 'counter', () => [
      { labels: {}, value: p.stats.coalesced },
    ]),
    new Computed('raced_cache_hits_total', 'Answers served from the cache', 'counter', () => [{ labels: {}, value: cache?.stats.hits ?? 0 }]),
    new Computed('raced_cache_misses_total', 'Cache lookups that found nothing fresh', 'counter', () => [{ labels: {}, value: cache?.stats.misses ?? 0 }]),
    new Computed('raced_cache_evictions_total', 'Entries pushed out by the size limit', 'counter', () => [{ labels: {}, value: cache?.stats.evictions ?? 0 }]),
    new Computed('raced_cache_stale_total', 'Stale answers served (serve-stale)', 'counter', () => [{ labels: {}, value: cache?.stats.stale ?? 0 }]),
    new Computed('raced_cache_prefetches_total', 'Background refreshes of entries about to expire', 'counter', () => [
      { labels: {}, value: cache?.stats.prefetches ?? 0 },
    ]),
    new Computed('raced_cache_entries', 'Entries in the cache', 'gauge', () => [{ labels: {}, value: cache?.size ?? 0 }]),
    ...tradeoffMetrics(raced),
    new Computed('raced_log_dropped_total', 'Log lines that could not be written (full disk, stderr reader gone or not reading) and were dropped', 'counter', () => [
      { labels: {}, value: raced.log.dropped },
    ]),
    new Computed('raced_cache_bytes', 'Bytes of the replies in the cache (bounded by --cache-max-bytes)', 'gauge', () => [{ labels: {}, value: cache?.bytes ?? 0 }]),
  ];
  for (const m of metrics) registry.registerMetric(m as unknown as Parameters<Registry['registerMetric']>[0]);
  return registry;
}
