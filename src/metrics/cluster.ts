// Metrics with --workers: the primary serves /metrics, summing what every
// worker reports over the cluster channel. prom-client answers the primary's
// requests in a worker only once an AggregatorRegistry has been made there
// (its constructor adds the worker's message listener): without one every
// scrape timed out after 5 s.
import { AggregatorRegistry, type Registry } from 'prom-client';
import type http from 'node:http';
import type { Endpoint } from '../net/address.js';
import { startMetricsServer } from './server.js';

/** In a worker: answer the primary's scrape requests from `reg`. */
export function answerPrimaryScrapes(reg: Registry): void {
  AggregatorRegistry.setRegistries([reg]);
  new AggregatorRegistry();
}

/** In the primary: serve the sum over every worker; `unhealthy` may read that sum too. */
export function startClusterMetrics(ep: Endpoint, unhealthy: (metrics: () => Promise<string>) => Promise<string | null>): Promise<http.Server> {
  const agg = new AggregatorRegistry();
  const metrics = (): Promise<string> => agg.clusterMetrics();
  return startMetricsServer(ep, { metrics, contentType: agg.contentType, unhealthy: () => unhealthy(metrics) });
}
