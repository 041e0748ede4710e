// Assembles a running raced from an options object: upstreams, strategy,
// cache, pipeline, listeners; and takes it apart again (SIGHUP, SIGTERM).
import type { Options } from './config/options.js';
import { readResolvSearch, watchResolv } from './config/resolv.js';
import { upstreamLists } from './config/upstreams.js';
import type { Endpoint } from './net/address.js';
import { Upstream, type StreamSettings, type UpstreamEvents, type UpstreamSpec } from './upstream/upstream.js';
import { UpstreamSet } from './upstream/set.js';
import { NameWatch } from './upstream/bootstrap.js';
import type { DohPool } from './upstream/doh-pool.js';
import { FAILING_AFTER_MS } from './upstream/health.js';
import { RECENT_STEP_S } from './upstream/stats.js';
import { UdpPool } from './upstream/udp-pool.js';
import { makeStrategy } from './strategy/index.js';
import { AnswerCache } from './cache/cache.js';
import { CacheFile } from './cache/persist.js';
import { Pipeline } from './pipeline.js';
import { AddressRules } from './wire/filter.js';
import { LOCAL, Router, type Route } from './router.js';
import { Listeners } from './server/listen.js';
import type { TcpStats } from './server/tcp.js';
import { Logger } from './log.js';
import { LocalHosts } from './hosts/local.js';
import { ERROR_CODES, StartupError } from './errors.js';
import cluster from 'node:cluster';
import { hasReusePort } from './workers.js';
import type { Server } from 'node:http';
import { startMetrics } from './metrics/start.js';
import { streamSettings } from './config/tls.js';
import { Tradeoffs } from './tradeoff/engine.js';
import { learnedHedgeMs } from './strategy/hedged.js';

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
  private readonly set = new UpstreamSet(
    (spec) => this.makeUpstream(spec),
    (m) => this.log.warn(m),
  );
  private readonly listeners: Listeners;
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
    this.listeners = new Listeners(this.pipeline, this.log, { idleTimeoutMs: opts.tcpIdleMs, maxConnections: opts.maxTcpConnections, maxPerClient: opts.maxTcpPerClient });
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

  /** The listen addresses as bound (port 0 resolved). */
  get bound(): readonly Endpoint[] {
    return this.listeners.bound;
  }

  /** Client TCP connections shed, over every listener. */
  get tcpStats(): TcpStats {
    return this.listeners.tcpStats;
  }

  /** Client TCP connections open now, over every listener. */
  get tcpConnections(): number {
    return this.listeners.tcpConnections;
  }

  /** Binds every listen address (UDP and TCP on the same port), then loads the upstreams. */
  async start(): Promise<void> {
    if (this.opts.systemd) {
      await this.listeners.adoptSystemd();
      // The sockets systemd passed are raced's own addresses.
      this.opts.listen = [...this.listeners.bound];
    }
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
    if (!this.opts.systemd) {
      const sharing = !cluster.isWorker ? 'none' : hasReusePort() ? 'reuseport' : 'cluster';
      try {
        await this.listeners.bind(this.opts.listen, sharing);
      } catch (err) {
        await this.stop(0);
        throw err;
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

  /** --metrics-listen: /metrics and /healthz (in a cluster worker, the primary's scrapes). */
  async startMetrics(version: string): Promise<void> {
    if (this.opts.metricsListen === null) return;
    try {
      this.metricsServer = await startMetrics(this.opts.metricsListen, this, version, this.log);
    } catch (err) {
      await this.stop(0);
      throw new StartupError(ERROR_CODES.METRICS, `cannot serve metrics on ${this.opts.metricsListen.label}: ${(err as Error).message}`);
    }
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
    const { defaults, domains } = this.set.update(
      upstreamLists(this.opts, (m) => this.log.warn(m)),
      this.opts.listen,
    );
    const rules = new Map<string, Route>();
    for (const [domain, ups] of domains) rules.set(domain, ups ?? LOCAL);
    this.router.setUpstreams(defaults, rules);
    this.tradeoffs.bind(defaults);
    this.pipeline.setTradeoffWindow(this.tradeoffs.window);
    if (!initial) this.log.info(`upstreams now ${this.upstreams.map((u) => u.label).join(', ')}`);
  }

  /** A new upstream; one named by a host name is down until its name resolves. */
  private makeUpstream(spec: UpstreamSpec): Upstream {
    const u = new Upstream(spec, this.pool, this.events, spec.transport === 'udp' ? null : this.stream());
    if (spec.hostName) this.watchName(u, spec.hostName);
    return u;
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

  /** Read on first use: the CA files once, and only when a stream upstream (or --tls-ca) needs them. */
  private stream(): StreamSettings {
    return (this.streamOpts ??= streamSettings(this.opts));
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
    for (const u of this.set.values()) u.health.stop();
    this.pipeline.draining = true;
    this.listeners.drain();
    await this.pipeline.drain(graceMs);
    this.pipeline.abortAll();
    // After the drain, so the answers of the last races are in it.
    if (this.started) await this.cacheFile?.close();
    await this.listeners.close();
    this.set.close();
    this.pipeline.hosts?.stop();
    this.pool.close();
  }
}

/** --search-domains, else the resolv-file's search line (unless --no-resolv). */
function searchDomains(opts: Options): string[] {
  if (opts.searchDomains.length > 0) return opts.searchDomains;
  if (opts.noResolv) return [];
  return readResolvSearch(opts.resolvFile);
}
