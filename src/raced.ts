// Assembles a running raced from an options object: upstreams, strategy,
// cache, pipeline, listeners; and takes it apart again (SIGHUP, SIGTERM).
import type { Options } from './config/options.js';
import { readResolvUpstreams, watchResolv } from './config/resolv.js';
import { isLoopback, isWildcard, type Endpoint } from './net/address.js';
import { Upstream, type UpstreamSpec } from './upstream/upstream.js';
import { UdpPool } from './upstream/udp-pool.js';
import { makeStrategy } from './strategy/index.js';
import { AnswerCache } from './cache/cache.js';
import { Pipeline } from './pipeline.js';
import { Router } from './router.js';
import { UdpListener } from './server/udp.js';
import { TcpListener } from './server/tcp.js';
import { Logger } from './log.js';
import cluster from 'node:cluster';
import { hasReusePort } from './workers.js';

/** A start-up failure with a message meant for the user as it is. */
export class StartupError extends Error {
  override name = 'StartupError';
}

/** Is `up` one of raced's own listen addresses? Forwarding there would loop. */
export function isSelf(up: Endpoint, listen: readonly Endpoint[]): boolean {
  return listen.some((l) => {
    if (l.port !== up.port) return false;
    if (l.host === up.host) return true;
    return isWildcard(l.host) && (isLoopback(up.host) || isWildcard(up.host));
  });
}

export class Raced {
  readonly pool = new UdpPool();
  readonly router = new Router();
  readonly pipeline: Pipeline;
  readonly cache: AnswerCache | null;
  private readonly upstreamsByLabel = new Map<string, Upstream>();
  private readonly udp: UdpListener[] = [];
  private readonly tcp: TcpListener[] = [];
  /** The listen addresses as bound (port 0 resolved). */
  readonly bound: Endpoint[] = [];
  private unwatch: (() => void) | null = null;
  private stopping = false;

  constructor(
    readonly opts: Options,
    readonly log: Logger = new Logger(opts.logLevel),
  ) {
    this.cache =
      opts.cacheSize > 0
        ? new AnswerCache({
            size: opts.cacheSize,
            minTtl: opts.minCacheTtl,
            maxTtl: opts.maxCacheTtl,
            negCache: opts.negCache,
            negTtl: opts.negTtl,
            serveStale: opts.serveStale,
            prefetch: opts.prefetch,
          })
        : null;
    const strategy = makeStrategy(opts.strategy, { tryTimeoutMs: opts.tryTimeoutMs });
    this.pipeline = new Pipeline(
      {
        timeoutMs: opts.timeoutMs,
        forwardMax: opts.forwardMax,
        allow: opts.allow,
        ednsPacketMax: opts.ednsPacketMax,
        logQueries: opts.logQueries,
        staleAfterMs: 1800,
      },
      this.router,
      strategy,
      this.cache,
      this.log,
    );
  }

  get upstreams(): readonly Upstream[] {
    return this.router.upstreams;
  }

  /** Binds every listen address (UDP and TCP on the same port), then loads the upstreams. */
  async start(): Promise<void> {
    this.loadUpstreams(true);
    const worker = cluster.isWorker;
    const sharing = !worker ? 'none' : hasReusePort() ? 'reuseport' : 'cluster';
    for (const ep of this.opts.listen) {
      const udp = new UdpListener(ep, this.pipeline, this.log, sharing);
      const tcp = new TcpListener(
        ep,
        this.pipeline,
        { idleTimeoutMs: this.opts.tcpIdleMs, maxConnections: this.opts.maxTcpConnections, shared: worker },
        this.log,
      );
      this.udp.push(udp);
      this.tcp.push(tcp);
      try {
        const port = await udp.listen(ep.port);
        await tcp.listen(port);
        this.bound.push({ ...ep, port, label: ep.label.replace(/:\d+$/, `:${port}`) });
      } catch (err) {
        await this.stop(0);
        throw bindError(ep, err as NodeJS.ErrnoException);
      }
    }
    if (this.opts.servers.length === 0 && !this.opts.noResolv) {
      this.unwatch = watchResolv(this.opts.resolvFile, () => {
        this.log.info(`${this.opts.resolvFile} changed: reloading upstreams`);
        this.reload();
      });
    }
    this.log.info(
      `listening on ${this.bound.map((b) => b.label).join(', ')}; strategy ${this.opts.strategy}; ` +
        `upstreams ${this.upstreams.map((u) => u.label).join(', ')}; cache ${this.opts.cacheSize}`,
    );
  }

  /** SIGHUP: re-read the resolv-file and rebuild the upstream set without dropping traffic. */
  reload(): void {
    try {
      this.loadUpstreams(false);
    } catch (err) {
      this.log.warn(`reload: ${(err as Error).message}; keeping ${this.upstreams.map((u) => u.label).join(', ')}`);
    }
  }

  private loadUpstreams(initial: boolean): void {
    let specs: UpstreamSpec[] = this.opts.servers;
    let from = '--server';
    if (specs.length === 0) {
      if (this.opts.noResolv) throw new StartupError('no upstream servers: give --server, or drop --no-resolv');
      from = this.opts.resolvFile;
      try {
        specs = readResolvUpstreams(this.opts.resolvFile, (m) => this.log.warn(m));
      } catch (err) {
        throw new StartupError(`cannot read --resolv-file ${this.opts.resolvFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
    }
    const kept: Upstream[] = [];
    const seen = new Set<string>();
    for (const spec of specs) {
      if (isSelf(spec.endpoint, this.opts.listen)) {
        this.log.warn(`skipping upstream ${spec.label} from ${from}: it is raced's own listen address`);
        continue;
      }
      if (seen.has(spec.label)) continue;
      seen.add(spec.label);
      let u = this.upstreamsByLabel.get(spec.label);
      if (u === undefined || u.spec.transport !== spec.transport) {
        u = new Upstream(spec, this.pool, (up, isUp) => this.log.warn(`upstream ${up.label} is ${isUp ? 'up again' : 'down'}`));
        this.upstreamsByLabel.set(spec.label, u);
      }
      kept.push(u);
    }
    if (kept.length === 0) {
      throw new StartupError(`no upstream servers left from ${from} (every one is raced itself or none is listed)`);
    }
    for (const [label, u] of this.upstreamsByLabel) {
      if (!kept.includes(u)) {
        u.health.stop();
        this.upstreamsByLabel.delete(label);
      }
    }
    this.router.setUpstreams(kept);
    if (!initial) this.log.info(`upstreams now ${kept.map((u) => u.label).join(', ')}`);
  }

  /** Stops accepting, lets queries in flight finish for up to `graceMs`, then releases everything. */
  async stop(graceMs: number): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.unwatch?.();
    for (const l of this.udp) l.stopAccepting();
    for (const l of this.tcp) l.close(graceMs);
    await this.pipeline.drain(graceMs);
    this.pipeline.abortAll();
    for (const l of this.udp) l.close();
    for (const u of this.upstreamsByLabel.values()) u.health.stop();
    this.pool.close();
  }
}

function bindError(ep: Endpoint, err: NodeJS.ErrnoException): StartupError {
  if (err.code === 'EACCES') {
    return new StartupError(
      `cannot listen on ${ep.label}: permission denied. Ports below 1024 need root or CAP_NET_BIND_SERVICE ` +
        `(e.g. sudo setcap cap_net_bind_service=+ep "$(command -v node)", or AmbientCapabilities= in the systemd unit), ` +
        `or use another port: --listen ${ep.family === 6 ? `[${ep.host}]` : ep.host}:5353`,
    );
  }
  if (err.code === 'EADDRINUSE') return new StartupError(`cannot listen on ${ep.label}: address already in use`);
  if (err.code === 'EADDRNOTAVAIL') return new StartupError(`cannot listen on ${ep.label}: no such local address`);
  return new StartupError(`cannot listen on ${ep.label}: ${err.message}`);
}
