// The Grafana dashboards, as code: `npm run grafana:build` writes
// grafana/dashboards/*.json from here, and a test checks they are in step.
import { writeFileSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join, resolve } from 'node:path';

export interface Target {
  expr: string;
  legendFormat: string;
  refId: string;
  format?: 'heatmap' | 'time_series' | 'table';
  /** One value per series at the dashboard's end time (tables). */
  instant?: boolean;
}

interface Panel {
  id: number;
  title: string;
  description: string;
  type: 'timeseries' | 'stat' | 'heatmap' | 'state-timeline' | 'table';
  unit: string;
  targets: Target[];
  w?: number;
  h?: number;
  overrides?: unknown[];
  /** Grafana transformations (a table joining several queries by label). */
  transformations?: unknown[];
}

const DS = { type: 'prometheus', uid: '${datasource}' };
const RI = '$__rate_interval';
const sel = (extra = ''): string => `{instance=~"$instance"${extra}}`;
const rate = (metric: string, extra = ''): string => `rate(${metric}${sel(extra)}[${RI}])`;
/** a / b where b may be 0: 0 instead of NaN while there is no traffic. */
const ratio = (a: string, b: string): string => `(${a}) / clamp_min(${b}, 1e-9)`;
const q = (expr: string, legendFormat: string, refId = 'A', format?: Target['format']): Target => ({ expr, legendFormat, refId, ...(format ? { format } : {}) });
const quantiles = (bucket: string, by: string, legendPrefix: string, extra = ''): Target[] =>
  [0.5, 0.95, 0.99].map((p, i) =>
    q(`histogram_quantile(${p}, sum by (${['le', by].filter(Boolean).join(', ')}) (${rate(bucket, extra)}))`, `${legendPrefix}p${p * 100}`, 'ABC'[i]),
  );

/** A multi-value query variable with an "All" that matches everything. */
function queryVar(name: string, label: string, query: string): Record<string, unknown> {
  return {
    name,
    label,
    type: 'query',
    datasource: DS,
    query: { query, refId: name },
    definition: query,
    includeAll: true,
    multi: true,
    allValue: '.*',
    current: { text: 'All', value: '$__all' },
    refresh: 2,
  };
}

function dashboard(uid: string, title: string, description: string, panels: Panel[], upstreamVar: boolean): Record<string, unknown> {
  let x = 0;
  let y = 0;
  const laid = panels.map((p) => {
    const w = p.w ?? 12;
    const h = p.h ?? 8;
    if (x + w > 24) {
      x = 0;
      y += 8;
    }
    const out = {
      id: p.id,
      type: p.type,
      title: p.title,
      description: p.description,
      datasource: DS,
      gridPos: { x, y, w, h },
      fieldConfig: { defaults: { unit: p.unit }, overrides: p.overrides ?? [] },
      options: p.type === 'heatmap' ? { calculate: false, yAxis: { unit: 's' } } : { legend: { displayMode: 'list', placement: 'bottom' } },
      targets: p.targets.map((t) => ({ datasource: DS, ...t })),
      ...(p.transformations ? { transformations: p.transformations } : {}),
    };
    x += w;
    return out;
  });
  const templating: Record<string, unknown>[] = [
    { name: 'datasource', label: 'Prometheus', type: 'datasource', query: 'prometheus', current: {}, hide: 0 },
    queryVar('instance', 'raced instance', 'label_values(raced_build_info, instance)'),
  ];
  if (upstreamVar) {
    templating.push(queryVar('upstream', 'upstream', 'label_values(raced_upstream_queries_total, upstream)'));
  }
  return {
    uid,
    title,
    description,
    tags: ['raced', 'dns'],
    editable: true,
    schemaVersion: 39,
    version: 1,
    refresh: '10s',
    time: { from: 'now-30m', to: 'now' },
    templating: { list: templating },
    panels: laid,
  };
}

const U = ', upstream=~"$upstream"';

export const DASHBOARDS: Record<string, Record<string, unknown>> = {
  'raced-overview': dashboard('raced-overview', 'raced / Overview', 'What clients see: query rate, latency, cache, failures.', [
    {
      id: 1,
      title: 'Client queries by transport and RCODE',
      description: 'Replies sent to clients per second.',
      type: 'timeseries',
      unit: 'reqps',
      targets: [q(`sum by (transport, rcode) (${rate('raced_queries_total')})`, '{{transport}} {{rcode}}')],
    },
    {
      id: 2,
      title: 'Client latency',
      description: 'Query received to reply sent, cache hits included (p50, p95, p99).',
      type: 'timeseries',
      unit: 's',
      targets: quantiles('raced_request_duration_seconds_bucket', '', ''),
    },
    {
      id: 3,
      title: 'Cache hit ratio',
      description: 'Share of cache lookups that found a fresh entry (0 with --cache-size 0).',
      type: 'timeseries',
      unit: 'percentunit',
      w: 8,
      targets: [q(ratio(`sum(${rate('raced_cache_hits_total')})`, `(sum(${rate('raced_cache_hits_total')}) + sum(${rate('raced_cache_misses_total')}))`), 'hit ratio')],
    },
    {
      id: 4,
      title: 'Cache entries',
      description: 'Entries held, summed over instances.',
      type: 'timeseries',
      unit: 'short',
      w: 8,
      targets: [q(`sum(raced_cache_entries${sel()})`, 'entries')],
    },
    {
      id: 5,
      title: 'Queries in flight',
      description: 'Client queries waiting for an upstream answer (capped by --dns-forward-max).',
      type: 'timeseries',
      unit: 'short',
      w: 8,
      targets: [q(`sum(raced_inflight${sel()})`, 'in flight')],
    },
    {
      id: 6,
      title: 'SERVFAIL share',
      description: 'Share of client replies that were SERVFAIL: every upstream failed or the deadline passed.',
      type: 'timeseries',
      unit: 'percentunit',
      targets: [q(ratio(`sum(${rate('raced_queries_total', ', rcode="SERVFAIL"')})`, `sum(${rate('raced_queries_total')})`), 'SERVFAIL')],
    },
    {
      id: 7,
      title: 'Races without a winner',
      description: 'Races that ended with every upstream losing, or at the deadline.',
      type: 'timeseries',
      unit: 'reqps',
      targets: [q(`sum by (reason) (${rate('raced_races_failed_total')})`, '{{reason}}')],
    },
  ], false),

  'raced-upstreams': dashboard('raced-upstreams', 'raced / Upstreams', 'Each upstream: latency, errors, wins, health, traffic.', [
    {
      id: 1,
      title: 'Upstream latency',
      description: 'Query sent to valid reply, per upstream (p50, p95, p99). Empty for an upstream that never answers.',
      type: 'timeseries',
      unit: 's',
      targets: quantiles('raced_upstream_duration_seconds_bucket', 'upstream', '{{upstream}} ', U),
    },
    {
      id: 2,
      title: 'Upstream latency heatmap',
      description: 'Distribution of upstream reply times over the selected upstreams.',
      type: 'heatmap',
      unit: 's',
      targets: [q(`sum by (le) (${rate('raced_upstream_duration_seconds_bucket', U)})`, '{{le}}', 'A', 'heatmap')],
    },
    {
      id: 3,
      title: 'Errors by kind',
      description: 'timeout, servfail, refused, malformed, mismatch (spoof-like), network (ICMP unreachable), tcp, tls, ignored (--ignore-address), rebind (--stop-dns-rebind).',
      type: 'timeseries',
      unit: 'reqps',
      targets: [q(`sum by (upstream, kind) (${rate('raced_upstream_errors_total', U)})`, '{{upstream}} {{kind}}')],
    },
    {
      id: 4,
      title: 'Win share',
      description: 'Share of races each upstream won: its reply went to the clients.',
      type: 'timeseries',
      unit: 'percentunit',
      targets: [
        q(
          `sum by (upstream) (${rate('raced_upstream_wins_total', U)}) / ignoring (upstream) group_left clamp_min(sum(${rate('raced_upstream_wins_total')}), 1e-9)`,
          '{{upstream}}',
        ),
      ],
    },
    {
      id: 5,
      title: 'Up / down',
      description: '1 while healthy; 0 while down and being probed with backoff.',
      type: 'state-timeline',
      unit: 'bool_yes_no',
      targets: [q(`max by (upstream) (raced_upstream_up${sel(U)})`, '{{upstream}}')],
    },
    {
      id: 6,
      title: 'Upstream traffic',
      description: 'DNS message bytes per second to (sent) and from (received) each upstream.',
      type: 'timeseries',
      unit: 'Bps',
      targets: [q(`sum by (upstream, direction) (${rate('raced_upstream_bytes_total', U)})`, '{{upstream}} {{direction}}')],
    },
    {
      id: 7,
      title: 'Queries to each upstream',
      description: 'Upstream queries per second.',
      type: 'timeseries',
      unit: 'reqps',
      targets: [q(`sum by (upstream) (${rate('raced_upstream_queries_total', U)})`, '{{upstream}}')],
    },
    {
      id: 8,
      title: 'Upstream queries in flight',
      description: 'Legs sent and not yet answered or given up.',
      type: 'timeseries',
      unit: 'short',
      targets: [q(`sum by (upstream) (raced_upstream_inflight${sel(U)})`, '{{upstream}}')],
    },
    {
      id: 9,
      title: 'Connections (tcp://, tls:// and https://)',
      description: 'Pooled connections open to each stream or DoH upstream; a steady load keeps this at --tls-pool (https: one until the server stream limit). Empty without tcp://, tls:// or https:// upstreams.',
      type: 'timeseries',
      unit: 'short',
      targets: [q(`sum by (upstream) (raced_upstream_connections_open${sel(U)})`, '{{upstream}}')],
    },
    {
      id: 10,
      title: 'TLS handshakes',
      description: 'Handshakes per second, and how many resumed a session. Near zero under a steady load: the pool pays them, not the queries.',
      type: 'timeseries',
      unit: 'ops',
      targets: [
        q(`sum by (upstream) (${rate('raced_upstream_tls_handshakes_total', U)})`, '{{upstream}} handshakes'),
        q(`sum by (upstream) (${rate('raced_upstream_tls_resumed_total', U)})`, '{{upstream}} resumed', 'B'),
      ],
    },
    {
      id: 11,
      title: 'Connection errors by kind',
      description: 'connect, handshake, verify (certificate), read_timeout, reset (lost with queries on it). A verify error marks the upstream down.',
      type: 'timeseries',
      unit: 'ops',
      targets: [q(`sum by (upstream, kind) (${rate('raced_upstream_connection_errors_total', U)})`, '{{upstream}} {{kind}}')],
    },
    {
      id: 12,
      title: 'Queries re-sent after a lost connection',
      description: 'Queries that were on a connection the server closed or that broke, sent again on another one.',
      type: 'timeseries',
      unit: 'reqps',
      targets: [q(`sum by (upstream) (${rate('raced_upstream_resent_total', U)})`, '{{upstream}}')],
    },
    {
      id: 13,
      title: 'Negative answers overruled',
      description:
        "NXDOMAIN or NODATA from this upstream that another upstream's positive answer beat: a split-horizon, filtering or broken upstream. Steadily above zero for one upstream: it does not know names the others do.",
      type: 'timeseries',
      unit: 'reqps',
      targets: [q(`sum by (upstream, kind) (${rate('raced_upstream_overruled_total', U)})`, '{{upstream}} {{kind}}')],
    },
    {
      id: 14,
      title: 'DoH streams, GOAWAYs and HTTP errors (https://)',
      description:
        'HTTP/2 streams per second (one per query), GOAWAYs, and exchanges that failed on a working connection: status (not 200), content_type, body (no valid DNS reply), reset. Each fails its leg at once. Empty without https:// upstreams.',
      type: 'timeseries',
      unit: 'ops',
      targets: [
        q(`sum by (upstream) (${rate('raced_upstream_doh_streams_total', U)})`, '{{upstream}} streams'),
        q(`sum by (upstream, kind) (${rate('raced_upstream_doh_http_errors_total', U)})`, '{{upstream}} {{kind}}', 'B'),
        q(`sum by (upstream) (${rate('raced_upstream_doh_goaways_total', U)})`, '{{upstream}} goaway', 'C'),
      ],
    },
  ], true),

  'raced-tradeoffs': dashboard('raced-tradeoffs', 'raced / Racing trade-offs', 'What racing costs in upstream traffic and buys in latency; what the cache gives back.', [
    {
      id: 1,
      title: 'Upstream queries per client query',
      description: 'All upstream queries over all client replies (cache hits count as client queries): 2 for all-servers with two upstreams, about 1 for hedged, near 0 with a warm cache.',
      type: 'timeseries',
      unit: 'short',
      targets: [
        q(ratio(`sum(${rate('raced_upstream_queries_total')})`, `sum(${rate('raced_queries_total')})`), 'per client query', 'A'),
        q(ratio(`sum(${rate('raced_race_fanout_sum')})`, `sum(${rate('raced_race_fanout_count')})`), 'per race (fan-out)', 'B'),
      ],
    },
    {
      id: 2,
      title: 'Upstream bytes per client query vs client p99',
      description: 'The trade-off at a glance: bytes exchanged with upstreams per client query (left) against the client p99 (right).',
      type: 'timeseries',
      unit: 'decbytes',
      targets: [
        q(ratio(`sum(${rate('raced_upstream_bytes_total')})`, `sum(${rate('raced_queries_total')})`), 'upstream bytes per client query', 'A'),
        q(`histogram_quantile(0.99, sum by (le) (${rate('raced_request_duration_seconds_bucket')}))`, 'client p99', 'B'),
      ],
      overrides: [
        {
          matcher: { id: 'byName', options: 'client p99' },
          properties: [
            { id: 'unit', value: 's' },
            { id: 'custom.axisPlacement', value: 'right' },
          ],
        },
      ],
    },
    {
      id: 3,
      title: 'Race margin',
      description: 'How much earlier the winner answered than the next valid reply (p50, p90): what racing buys over the runner-up.',
      type: 'timeseries',
      unit: 's',
      targets: [0.5, 0.9].map((p, i) => q(`histogram_quantile(${p}, sum by (le) (${rate('raced_race_margin_seconds_bucket')}))`, `p${p * 100}`, 'AB'[i])),
    },
    {
      id: 4,
      title: 'Wasted upstream queries',
      description: 'Upstream queries per second whose reply was not the answer (lost, late, or never came).',
      type: 'timeseries',
      unit: 'reqps',
      targets: [q(`sum(${rate('raced_race_wasted_total')})`, 'wasted')],
    },
    {
      id: 5,
      title: 'Fan-out by strategy',
      description: 'Upstream queries per race for each strategy that has run (hedged next to all-servers when both have).',
      type: 'timeseries',
      unit: 'short',
      targets: [
        q(
          `sum by (strategy) (sum by (instance) (${rate('raced_race_fanout_sum')}) * on (instance) group_left (strategy) max by (instance, strategy) (raced_build_info${sel()})) / clamp_min(sum by (strategy) (sum by (instance) (${rate('raced_race_fanout_count')}) * on (instance) group_left (strategy) max by (instance, strategy) (raced_build_info${sel()})), 1e-9)`,
          '{{strategy}}',
        ),
      ],
    },
    {
      id: 6,
      title: 'What the cache saves',
      description: 'Upstream queries per second the cache avoided: hits times the mean fan-out of a race.',
      type: 'timeseries',
      unit: 'reqps',
      targets: [q(`sum(${rate('raced_cache_hits_total')}) * ${ratio(`sum(${rate('raced_race_fanout_sum')})`, `sum(${rate('raced_race_fanout_count')})`)}`, 'upstream queries saved')],
    },
    {
      id: 7,
      title: 'Coalesced queries',
      description: 'Client queries per second that joined a race already in flight for the same question.',
      type: 'timeseries',
      unit: 'reqps',
      targets: [q(`sum(${rate('raced_coalesced_total')})`, 'coalesced')],
    },
    {
      id: 8,
      title: 'Predicted frontier: each fan-out option',
      description:
        "raced's own prediction from its recent races (GET /tradeoffs): for each option (all, top-K, hedged, hedged@Dms, ordered), upstream queries per client query against the predicted p50, p95 and p99. The useful options are those no other beats on both cost and p99.",
      type: 'table',
      unit: 's',
      w: 24,
      targets: [
        { ...q(`max by (option) (raced_tradeoff_upstream_queries_per_query${sel()})`, 'upstream queries per query', 'A', 'table'), instant: true },
        ...[0.5, 0.95, 0.99].map((p, i) => ({
          ...q(`max by (option) (raced_tradeoff_latency_seconds${sel(`, quantile="${p}"`)})`, `p${p * 100}`, 'BCD'[i], 'table'),
          instant: true,
        })),
      ],
      transformations: [
        { id: 'merge', options: {} },
        { id: 'organize', options: { excludeByName: { Time: true }, renameByName: { 'Value #A': 'upstream queries per query', 'Value #B': 'p50', 'Value #C': 'p95', 'Value #D': 'p99' } } },
      ],
      overrides: [{ matcher: { id: 'byName', options: 'upstream queries per query' }, properties: [{ id: 'unit', value: 'short' }] }],
    },
    {
      id: 9,
      title: "auto's choice over time",
      description: '--strategy auto: the option in use (1) over time; empty under other strategies. It runs all while the window is small or an upstream has just changed state.',
      type: 'state-timeline',
      unit: 'short',
      w: 24,
      targets: [q(`max by (option) (raced_auto_choice${sel()})`, '{{option}}')],
    },
  ], false),
};

export function writeDashboards(dir: string): void {
  mkdirSync(dir, { recursive: true });
  for (const [name, d] of Object.entries(DASHBOARDS)) writeFileSync(join(dir, `${name}.json`), JSON.stringify(d, null, 2) + '\n');
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const dir = fileURLToPath(new URL('../../grafana/dashboards/', import.meta.url));
  writeDashboards(dir);
  console.log(`wrote ${Object.keys(DASHBOARDS).length} dashboards to ${dir}`);
}
