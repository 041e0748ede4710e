// Metrics start-up: served here in a single process; in a cluster worker
// only answering the primary, which sums every worker's series.
import cluster from 'node:cluster';
import type { Server } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Endpoint } from '../net/address.js';
import type { Logger } from '../log.js';
import { FAILING_AFTER_MS } from '../upstream/health.js';
import { buildRegistry, type MetricsSources } from './registry.js';
import { exposureWarning, registrySource, startMetricsServer } from './server.js';
import { answerPrimaryScrapes } from './cluster.js';

/** The HTTP server of /metrics, /healthz and /tradeoffs; null in a cluster worker. Rejects when it cannot listen. */
export async function startMetrics(listen: Endpoint, sources: MetricsSources, version: string, log: Logger): Promise<Server | null> {
  if (cluster.isWorker) {
    answerPrimaryScrapes(buildRegistry(sources, version));
    return null;
  }
  const exposed = exposureWarning(listen);
  if (exposed) log.warn(exposed);
  const reg = buildRegistry(sources, version);
  const server = await startMetricsServer(listen, registrySource(reg, () => unhealthy(sources.upstreams), () => sources.tradeoffs.report()));
  log.info(`metrics on http://${listen.label}/metrics`);
  return server;
}

/** /healthz: null while some upstream is up and answering, else why not. */
function unhealthy(upstreams: MetricsSources['upstreams']): string | null {
  const now = performance.now();
  if (upstreams.some((u) => u.health.state(now) === 'up')) return null;
  if (upstreams.every((u) => !u.health.up)) return 'every upstream is down';
  return `no upstream gave a valid answer in the last ${FAILING_AFTER_MS / 1000} s (${upstreams.map((u) => `${u.label} ${u.health.state(now)}`).join(', ')})`;
}
