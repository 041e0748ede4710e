// The metrics HTTP endpoint: /metrics (Prometheus text) and /healthz.
import http from 'node:http';
import type { Registry } from 'prom-client';
import { isLoopback, type Endpoint } from '../net/address.js';

/**
 * /metrics names the upstreams, their TLS names and the Node version, and
 * anyone who reaches it can scrape it: said at start when it listens beyond
 * loopback (the wildcard included).
 */
export function exposureWarning(ep: Endpoint): string | null {
  if (isLoopback(ep.host)) return null;
  return (
    `metrics on ${ep.label} are reachable beyond this host: /metrics shows upstream addresses, TLS names and the Node version; ` +
    `allow only your Prometheus in the host firewall, or put a reverse proxy with authentication in front`
  );
}

export interface MetricsSource {
  /** Prometheus text exposition. */
  metrics(): Promise<string>;
  contentType: string;
  /** null when healthy, else why not. */
  unhealthy(): string | null | Promise<string | null>;
  /** GET /tradeoffs: the trade-off engine's report (tradeoff/engine.ts); absent: 404. */
  tradeoffs?(): unknown;
}

export function registrySource(reg: Registry, unhealthy: () => string | null, tradeoffs?: () => unknown): MetricsSource {
  return { metrics: () => reg.metrics(), contentType: reg.contentType, unhealthy, ...(tradeoffs ? { tradeoffs } : {}) };
}

export function startMetricsServer(ep: Endpoint, src: MetricsSource): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/metrics') {
      src.metrics().then(
        (body) => res.writeHead(200, { 'content-type': src.contentType }).end(body),
        (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`error: ${err.message}\n`),
      );
    } else if (path === '/healthz') {
      Promise.resolve()
        .then(() => src.unhealthy())
        .then(
          (why) => res.writeHead(why ? 503 : 200, { 'content-type': 'text/plain' }).end(why ? `unhealthy: ${why}\n` : 'ok\n'),
          (err: Error) => res.writeHead(503, { 'content-type': 'text/plain' }).end(`unhealthy: ${err.message}\n`),
        );
    } else if (path === '/tradeoffs' && src.tradeoffs) {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(src.tradeoffs()) + '\n');
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics, /healthz or /tradeoffs\n');
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: ep.host, port: ep.port }, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}
