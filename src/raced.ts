// Assembles a running raced from an options object: upstreams, strategy,
// cache, pipeline, listeners; and takes it apart again (SIGHUP, SIGTERM).
import type { Options } from './config/options.js';
import { parseResolvConf, readResolvUpstreams, watchResolv } from './config/resolv.js';
import { readFileSync } from 'node:fs';
import { endpointLabel, isLoopback, isWildcard, parseEndpoint, unmap, type Endpoint } from './net/address.js';
import { listenFds, udpFamilyOf } from './server/systemd.js';
import { Upstream, type StreamSettings, type UpstreamEvents, type UpstreamSpec } from './upstream/upstream.js';
import { upstreamTlsContext } from './upstream/ca.js';
import { NameWatch } from './upstream/bootstrap.js';
import type { DohPool } from './upstream/doh-pool.js';
import { FAILING_AFTER_MS } from './upstream/health.js';
import { RECENT_STEP_S } from './upstream/stats.js';
import { performance } from 'node:perf_hooks';
import { UdpPool } from './upstream/udp-pool.js';
import { makeStrategy } from './strategy/index.js';
import { AnswerCache } from './cache/cache.js';
import { CacheFile } from './cache/persist.js';
import { Pipeline } from './pipeline.js';
import { AddressRules } from './wire/filter.js';
import { withoutDot } from './wire/names.js';
import { LOCAL, Router, type Route } from './router.js';
import { UdpListener } from './server/udp.js';
import { TcpListener, TcpStats, type TcpOptions } from './server/tcp.js';
import { Logger } from './log.js';
import { LocalHosts } from './hosts/local.js';
import { ERROR_CODES, RacedError } from './errors.js';
import cluster from 'node:cluster';
import { hasReusePort } from './workers.js';
import type { Server } from 'node:http';
import { buildRegistry } from './metrics/registry.js';
import { exposureWarning, registrySource, startMetricsServer } from './metrics/server.js';
import { answerPrimaryScrapes } from './metrics/cluster.js';
import { Tradeoffs } from './tradeoff/engine.js';
import { learnedHedgeMs } from './strategy/hedged.js';

/** A start-up failure with a message meant for the user as it is. */
export class StartupError extends RacedError {
  override name = 'StartupError';
}

/** Is `up` one of raced's own listen addresses? Forwarding there would loop. */
export function isSelf(up: Endpoint, listen: readonly Endpoint[]): boolean {
  return listen.some((l) => {
    if (l.port !== up.port) return false;
    if (l.host === up.host) return true;
    return isWildcard(l.host) && (isLoopback(unmap(up.host)) || isWildcard(up.host));
  });
}

/** The option of GET /tradeoffs the configured strategy runs as; null for those that are none of them. */
function fixedOption(o: Options): string | null {
  if (o.strategy === 'all' || o.strategy === 'ordered') return o.strategy;
  if (o.strategy === 'top-k') return `top-${o.raceWidth}`;
  // A fixed --hedge-delay is what the `hedged` row predicts then.
  if (o.strategy === 'hedged') return 'hedged';
  return null;
}

export class Raced {
  readonly pool = new UdpPool();
  readonly router = new Router();
  readonly pipeline: Pipeline;
  readonly cache: AnswerCache | null;
  /** --cache-file; null without one. */
  readonly cacheFile: CacheFile | null;
  /** Set once listening: only a raced that started saves its cache when it stops. */
  private started = false;
  /** Predictions of every fan-out option from the default upstreams' races (GET /tradeoffs). */
  readonly tradeoffs: Tradeoffs;
  private readonly upstreamsByLabel = new Map<string, Upstream>();
  private readonly udp: UdpListener[] = [];
  private readonly tcp: TcpListener[] = [];
  /** Client TCP connections shed, over every listener. */
  readonly tcpStats = new TcpStats();
  /** The listen addresses as bound (port 0 resolved). */
  readonly bound: Endpoint[] = [];
  private unwatch: (() => void) | null = null;
  private metricsServer: Server | null = null;
  private stopping = false;
  /** Snapshots of each upstream's counters for its last-minute figures (raced status). */
  private sampler: NodeJS.Timeout | null = null;
  /** Settings of pooled tcp:// and tls:// connections; the CAs are read once, on first use. */
  private streamOpts: StreamSettings | null = null;
  private readonly events: UpstreamEvents = {
    health: (u, up) => this.log.warn(`upstream ${u.label} is ${up ? 'up again' : 'down'}`),
    failing: (u, failing) =>
      this.log.warn(
        failing
          ? `upstream ${u.label} is failing: only SERVFAIL/REFUSED, no valid answer for ${FAILING_AFTER_MS / 1000} s`
          : `upstream ${u.label} gives valid answers again`,
      ),
    connError: (u, kind, message) =>
      this.log.warn(
        kind === 'verify'
          ? `upstream ${u.label}: certificate verification failed: ${message}`
          : `upstream ${u.label}: connection ${kind === 'reset' ? 'lost' : `failed (${kind})`}: ${message}`,
      ),
    fault: (u, err) => this.pipeline.guard.fault('upstream', err, u.label),
  };

  constructor(
    readonly opts: Options,
    readonly log: Logger = new Logger(opts.logLevel),
  ) {
    this.cache =
      opts.cacheSize > 0
        ? new AnswerCache({
            size: opts.cacheSize,
            maxBytes: opts.cacheMaxBytes,
            minTtl: opts.minCacheTtl,
            maxTtl: opts.maxCacheTtl,
            negCache: opts.negCache,
            negTtl: opts.negTtl,
            serveStale: opts.serveStale,
            prefetch: opts.prefetch,
          })
        : null;
    this.cacheFile = this.cache && opts.cacheFile ? new CacheFile(opts.cacheFile, this.cache, this.log, opts.ednsPacketMax) : null;
    const hosts = opts.hostsFiles.length > 0 || opts.hostsText ? this.startHosts() : null;
    this.tradeoffs = new Tradeoffs({
      timeoutMs: opts.timeoutMs,
      tryTimeoutMs: opts.tryTimeoutMs,
      targetMs: opts.strategy === 'auto' ? opts.latencyTargetMs : null,
      fixedOption: fixedOption(opts),
      hedge: { learned: learnedHedgeMs, fixedMs: opts.hedgeDelayMs },
      onChoice: (from, to, p) =>
        this.log.info(
          `auto: now ${to} (was ${from})` +
            (p && p.p99_ms !== null ? `: predicted p99 ${p.p99_ms} ms at ${p.upstream_queries_per_query} upstream queries per query` : ''),
        ),
    });
    const strategy = makeStrategy(opts.strategy, {
      tryTimeoutMs: opts.tryTimeoutMs,
      hedgeDelayMs: opts.hedgeDelayMs,
      raceWidth: opts.raceWidth,
      exploreShare: opts.exploreShare,
      tradeoffs: this.tradeoffs,
    });
    this.pipeline = new Pipeline(
      {
        timeoutMs: opts.timeoutMs,
        forwardMax: opts.forwardMax,
        allow: opts.allow,
        ednsPacketMax: opts.ednsPacketMax,
        logQueries: opts.logQueries,
        // --log-queries is asked for explicitly: its lines do not depend on --log-level.
        queryLog: opts.logQueries && !this.log.enabled('info') ? new Logger('info') : undefined,
        roundRobin: opts.roundRobin,
        search: opts.enableSearch ? { domains: searchDomains(opts), ndots: opts.ndots } : null,
        fwdNdots: opts.fwdNdots,
        noRec: opts.noRec,
        staleAfterMs: 1800,
        rateLimit:
          opts.rateLimit > 0
            ? { qps: opts.rateLimit, v4Prefix: opts.rateLimitV4Prefix, v6Prefix: opts.rateLimitV6Prefix, action: opts.rateLimitAction, exempt: opts.rateLimitExempt }
            : null,
        negativeGraceMs: opts.negativeGraceMs,
        addresses: AddressRules.from({
          ignore: opts.ignoreAddress,
          bogus: opts.bogusNxdomain,
          stopRebind: opts.stopDnsRebind,
          rebindLocalhostOk: opts.rebindLocalhostOk,
          rebindDomainOk: opts.rebindDomainOk,
        }),
      },
      this.router,
      strategy,
      this.cache,
      this.log,
      hosts,
    );
  }

  private startHosts(): LocalHosts {
    try {
      return new LocalHosts({ files: this.opts.hostsFiles, ttl: this.opts.hostsTtl, pollSeconds: this.opts.hostsPoll, inline: this.opts.hostsText }, this.log);
    } catch (err) {
      throw new StartupError(ERROR_CODES.FILE, (err as Error).message);
    }
  }

  get upstreams(): readonly Upstream[] {
    return this.router.upstreams;
  }

  /** Binds every listen address (UDP and TCP on the same port), then loads the upstreams. */
  async start(): Promise<void> {
    if (this.opts.systemd) await this.adoptSystemd();
    // An unreadable --tls-ca is a start-up error even before any tls:// upstream needs it.
    if (this.opts.tlsCa.length > 0) this.stream();
    this.loadUpstreams(true);
    this.tradeoffs.start();
    this.sampler = setInterval(() => {
      for (const u of this.upstreams) u.stats.recent.sample();
    }, RECENT_STEP_S * 1000);
    this.sampler.unref();
    // Before the first listener: no query is answered from a half-loaded cache.
    this.cacheFile?.load();
    const worker = cluster.isWorker;
    const sharing = !worker ? 'none' : hasReusePort() ? 'reuseport' : 'cluster';
    for (const ep of this.opts.systemd ? [] : this.opts.listen) {
      for (let attempt = 1; ; attempt++) {
        const udp = new UdpListener(ep, this.pipeline, this.log, sharing);
        const tcp = new TcpListener(ep, this.pipeline, this.tcpOptions(worker), this.log, this.tcpStats);
        try {
          this.udp.push(udp);
          this.tcp.push(tcp);
          const port = await udp.listen(ep.port);
          await tcp.listen(port);
          this.bound.push({ ...ep, port, label: ep.label.replace(/:\d+$/, `:${port}`) });
          break;
        } catch (err) {
          // Port 0: the free UDP port the kernel chose may be taken on TCP (an outgoing connection's port): pick again.
          if (ep.port === 0 && (err as NodeJS.ErrnoException).code === 'EADDRINUSE' && attempt < 10) {
            this.udp.splice(this.udp.indexOf(udp), 1);
            this.tcp.splice(this.tcp.indexOf(tcp), 1);
            udp.close();
            void tcp.close(0);
            continue;
          }
          await this.stop(0);
          throw bindError(ep, err as NodeJS.ErrnoException);
        }
      }
    }
    if (this.opts.servers.length === 0 && !this.opts.noResolv) {
      this.unwatch = watchResolv(this.opts.resolvFile, () => {
        this.log.info(`${this.opts.resolvFile} changed: reloading upstreams`);
        this.reload();
      });
    }
    this.started = true;
    this.cacheFile?.startTimer(this.opts.cacheSaveInterval);
    this.log.info(
      `listening on ${this.bound.map((b) => b.label).join(', ')}; strategy ${this.opts.strategy}; ` +
        `upstreams ${this.upstreams.map((u) => u.label).join(', ')}; cache ${this.opts.cacheSize}`,
    );
  }

  /**
   * --systemd: serve on the sockets systemd passed (UDP or TCP, told apart by
   * /proc), in place of --listen; they also count as raced's own addresses.
   */
  private tcpOptions(shared: boolean): TcpOptions {
    return { idleTimeoutMs: this.opts.tcpIdleMs, maxConnections: this.opts.maxTcpConnections, maxPerClient: this.opts.maxTcpPerClient, shared };
  }

  /** Client TCP connections open now, over every listener. */
  get tcpConnections(): number {
    return this.tcp.reduce((n, t) => n + t.connections, 0);
  }

  private async adoptSystemd(): Promise<void> {
    const fds = listenFds();
    if (typeof fds === 'string') throw new StartupError(ERROR_CODES.SYSTEMD, `--systemd: ${fds}`);
    const tcpOpts = this.tcpOptions(false);
    for (const fd of fds) {
      try {
        const fam = udpFamilyOf(fd);
        const placeholder = parseEndpoint(fam === 6 ? '[::]:0' : '0.0.0.0:0', 53, true);
        let addr: { address: string; port: number };
        if (fam !== null) {
          const udp = new UdpListener(placeholder, this.pipeline, this.log);
          this.udp.push(udp);
          addr = await udp.adopt(fd);
        } else {
          const tcp = new TcpListener(placeholder, this.pipeline, tcpOpts, this.log, this.tcpStats);
          this.tcp.push(tcp);
          addr = await tcp.adopt(fd);
        }
        const ep = parseEndpoint(endpointLabel(addr.address, addr.port), 53, true);
        if (!this.bound.some((b) => b.label === ep.label)) this.bound.push(ep);
      } catch (err) {
        throw new StartupError(ERROR_CODES.SYSTEMD, `--systemd: cannot use descriptor ${fd}: ${(err as Error).message}`);
      }
    }
    this.opts.listen = [...this.bound];
  }

  /**
   * Metrics: served here in a single process; in a cluster worker only
   * answering the primary, which sums every worker's series.
   */
  async startMetrics(version: string): Promise<void> {
    if (this.opts.metricsListen === null) return;
    if (cluster.isWorker) {
      answerPrimaryScrapes(buildRegistry(this, version));
      return;
    }
    const exposed = exposureWarning(this.opts.metricsListen);
    if (exposed) this.log.warn(exposed);
    const reg = buildRegistry(this, version);
    const unhealthy = (): string | null => {
      const now = performance.now();
      if (this.upstreams.some((u) => u.health.state(now) === 'up')) return null;
      if (this.upstreams.every((u) => !u.health.up)) return 'every upstream is down';
      return `no upstream gave a valid answer in the last ${FAILING_AFTER_MS / 1000} s (${this.upstreams.map((u) => `${u.label} ${u.health.state(now)}`).join(', ')})`;
    };
    try {
      this.metricsServer = await startMetricsServer(this.opts.metricsListen, registrySource(reg, unhealthy, () => this.tradeoffs.report()));
    } catch (err) {
      await this.stop(0);
      throw new StartupError(ERROR_CODES.METRICS, `cannot serve metrics on ${this.opts.metricsListen.label}: ${(err as Error).message}`);
    }
    this.log.info(`metrics on http://${this.opts.metricsListen.label}/metrics`);
  }

  /** SIGHUP: re-read the resolv-file and rebuild the upstream set without dropping traffic. */
  reload(): void {
    this.pipeline.hosts?.reload();
    try {
      this.loadUpstreams(false);
    } catch (err) {
      this.log.warn(`reload: ${(err as Error).message}; keeping ${this.upstreams.map((u) => u.label).join(', ')}`);
    }
  }

  private loadUpstreams(initial: boolean): void {
    let specs: UpstreamSpec[] = this.opts.servers;
    let from = this.opts.serversFrom;
    const routes = this.opts.routes;
    if (specs.length === 0 && !this.opts.noResolv) {
      from = this.opts.resolvFile;
      try {
        specs = readResolvUpstreams(this.opts.resolvFile, (m) => this.log.warn(m));
      } catch (err) {
        throw new StartupError(ERROR_CODES.UPSTREAMS, `cannot read --resolv-file ${this.opts.resolvFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
    }
    const used = new Set<Upstream>();
    const upstreamFor = (spec: UpstreamSpec, source: string): Upstream | null => {
      if (!spec.hostName && isSelf(spec.endpoint, this.opts.listen)) {
        this.log.warn(`skipping upstream ${spec.label} from ${source}: it is raced's own listen address`);
        return null;
      }
      let u = this.upstreamsByLabel.get(spec.label);
      if (u === undefined) {
        u = new Upstream(spec, this.pool, this.events, spec.transport === 'udp' ? null : this.stream());
        this.upstreamsByLabel.set(spec.label, u);
        if (spec.hostName) this.watchName(u, spec.hostName);
      }
      used.add(u);
      return u;
    };
    const defaults: Upstream[] = [];
    for (const spec of specs) {
      const u = upstreamFor(spec, from);
      if (u && !defaults.includes(u)) defaults.push(u);
    }
    const rules = new Map<string, Route>();
    for (const r of routes) {
      if (r.spec === null) {
        rules.set(r.domain, LOCAL);
        continue;
      }
      const u = upstreamFor(r.spec, `--server /${r.domain}/`);
      const have = rules.get(r.domain);
      if (u === null || have === LOCAL) continue;
      rules.set(r.domain, have && !have.includes(u) ? [...have, u] : have ?? [u]);
    }
    if (defaults.length === 0 && rules.size === 0) {
      throw new StartupError(
        ERROR_CODES.UPSTREAMS,
        this.opts.noResolv && this.opts.servers.length === 0
          ? 'no upstream servers: give --server, or drop --no-resolv'
          : `no upstream servers left from ${from} (every one is raced itself or none is listed)`,
      );
    }
    for (const [label, u] of this.upstreamsByLabel) {
      if (!used.has(u)) {
        u.close();
        this.upstreamsByLabel.delete(label);
      }
    }
    this.router.setUpstreams(defaults, rules);
    this.tradeoffs.bind(defaults);
    this.pipeline.setTradeoffWindow(this.tradeoffs.window);
    if (!initial) this.log.info(`upstreams now ${this.upstreams.map((u) => u.label).join(', ')}`);
  }

  /**
   * Keeps an https://HOST upstream's name resolved through the bootstrap
   * resolvers; down (and probed) until the first answer, so an unresolvable
   * name at start does not stop raced.
   */
  private watchName(u: Upstream, name: string): void {
    const pool = u.stream as DohPool;
    u.health.markDown();
    const servers = (): Endpoint[] =>
      this.opts.bootstrap.length > 0 ? this.opts.bootstrap : this.upstreams.filter((x) => x.spec.transport === 'udp' || x.spec.transport === 'tcp').map((x) => x.spec.endpoint);
    u.bootstrap = new NameWatch(name, u.spec.endpoint.port, servers, {
      resolved: (eps, ttl) => {
        pool.setAddresses(eps);
        this.log.info(`upstream ${u.label}: ${name} is ${eps.map((e) => e.host).join(', ')} (TTL ${ttl} s)`);
      },
      failed: (message, kept) =>
        this.log.warn(`upstream ${u.label}: cannot resolve ${name}: ${message}${kept > 0 ? `; keeping its last ${kept} address(es)` : '; down until it resolves'}`),
    });
  }

  private stream(): StreamSettings {
    if (this.streamOpts) return this.streamOpts;
    const o = this.opts;
    let context: StreamSettings['context'];
    try {
      context = upstreamTlsContext(o.tlsCa);
    } catch (err) {
      throw new StartupError(ERROR_CODES.FILE, (err as Error).message);
    }
    this.streamOpts = {
      size: o.tlsPool,
      context,
      connectTimeoutMs: o.tlsConnectTimeoutMs,
      handshakeTimeoutMs: o.tlsHandshakeTimeoutMs,
      readTimeoutMs: o.tlsReadTimeoutMs,
      idleTimeoutMs: o.tlsIdleTimeoutMs,
    };
    return this.streamOpts;
  }

  /**
   * Drain, then release everything: new queries get REFUSED (UDP and TCP),
   * queries in flight are answered, for up to `graceMs`, and SERVFAIL at the
   * end of it; TCP connections close after their last reply.
   */
  async stop(graceMs: number): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.unwatch?.();
    if (this.sampler) clearInterval(this.sampler);
    this.tradeoffs.stop();
    this.metricsServer?.close();
    this.metricsServer?.closeAllConnections();
    // Legs cut short by raced's own stop are no sign that an upstream is down.
    for (const u of this.upstreamsByLabel.values()) u.health.stop();
    this.pipeline.draining = true;
    for (const l of this.tcp) l.drain();
    await this.pipeline.drain(graceMs);
    this.pipeline.abortAll();
    // After the drain, so the answers of the last races are in it.
    if (this.started) await this.cacheFile?.close();
    await Promise.all(this.tcp.map((l) => l.close(1000)));
    for (const l of this.udp) l.close();
    for (const u of this.upstreamsByLabel.values()) u.close();
    this.pipeline.hosts?.stop();
    this.pool.close();
  }
}

/** --search-domains, else the resolv-file's search line (unless --no-resolv). */
function searchDomains(opts: Options): string[] {
  if (opts.searchDomains.length > 0) return opts.searchDomains;
  if (opts.noResolv) return [];
  try {
    return parseResolvConf(readFileSync(opts.resolvFile, 'utf8')).search.map(withoutDot);
  } catch {
    return [];
  }
}

function bindError(ep: Endpoint, err: NodeJS.ErrnoException): StartupError {
  if (err.code === 'EACCES') {
    return new StartupError(
      ERROR_CODES.LISTEN,
      `cannot listen on ${ep.label}: permission denied. Ports below 1024 need CAP_NET_BIND_SERVICE: run raced from ` +
        `the systemd unit (deploy/raced.service: DynamicUser=, AmbientCapabilities=CAP_NET_BIND_SERVICE) or with socket ` +
        `activation (--systemd), or start it as root (it binds, then runs as --user, default nobody); ` +
        `or use another port: --listen ${endpointLabel(ep.host, 5353)}`,
    );
  }
  if (err.code === 'EADDRINUSE') return new StartupError(ERROR_CODES.LISTEN, `cannot listen on ${ep.label}: address already in use`);
  if (err.code === 'EADDRNOTAVAIL') return new StartupError(ERROR_CODES.LISTEN, `cannot listen on ${ep.label}: no such local address`);
  return new StartupError(ERROR_CODES.LISTEN, `cannot listen on ${ep.label}: ${err.message}`);
}
