// The one options object raced runs on, its defaults, and the parsers that
// turn flag and environment values into it. No commander here: cli.ts wires
// these to flags.
import { ERROR_CODES, RacedError } from '../errors.js';
import { parseCidr, parseEndpoint, type Cidr, type Endpoint } from '../net/address.js';
import { parseUpstream, type UpstreamSpec } from '../upstream/address.js';
import { STRATEGY_NAMES, type StrategyName } from '../strategy/index.js';
import { LOG_LEVELS, type LogLevel } from '../log.js';
import { normaliseDomain } from '../router.js';
import { availableParallelism } from 'node:os';
import { RATE_LIMIT_ACTIONS, type RateLimitAction } from '../ratelimit.js';

/** dnsmasq's --server=/example.com/ADDR: queries under `domain` go only to `spec`; null spec: local, never forwarded. */
export interface DomainRoute {
  domain: string;
  spec: UpstreamSpec | null;
}

/** One --server value: a default upstream, or routes for domains. */
export type ServerItem = { spec: UpstreamSpec } | { routes: DomainRoute[] };

export interface Options {
  listen: Endpoint[];
  /** Default upstreams; empty: read the resolv-file. */
  servers: UpstreamSpec[];
  /** Where `servers` came from, for messages: --server, or the resolv.conf --default-resolver read. */
  serversFrom: string;
  routes: DomainRoute[];
  resolvFile: string;
  noResolv: boolean;
  strategy: StrategyName;
  timeoutMs: number;
  tryTimeoutMs: number;
  cacheSize: number;
  /** Bound on the bytes of cached replies (--cache-max-bytes). */
  cacheMaxBytes: number;
  minCacheTtl: number;
  maxCacheTtl: number;
  negCache: boolean;
  negTtl: number;
  serveStale: number;
  prefetch: boolean;
  /** --cache-file: where the cache is saved and loaded from; null: nowhere. */
  cacheFile: string | null;
  /** --cache-save-interval: seconds between saves; 0: only on exit and when asked. */
  cacheSaveInterval: number;
  /** --control-socket: the unix socket `raced cache …` and `raced reload` talk to; null: none. */
  controlSocket: string | null;
  logQueries: boolean;
  logLevel: LogLevel;
  forwardMax: number;
  allow: Cidr[];
  ednsPacketMax: number;
  tcpIdleMs: number;
  maxTcpConnections: number;
  maxTcpPerClient: number;
  /** hedged: fixed hedge delay instead of the learned one; null = learned. */
  hedgeDelayMs: number | null;
  /** Processes answering queries (node:cluster); 1 = no cluster. */
  workers: number;
  /** Where /metrics and /healthz are served; null = off. */
  metricsListen: Endpoint | null;
  /** Hosts files answered locally (--hostsfile, --addn-hosts). */
  hostsFiles: string[];
  hostsTtl: number;
  hostsPoll: number;
  /** Extra hosts lines (from --conf-file address=/domain/ip). */
  hostsText: string;
  roundRobin: boolean;
  /** Take over /etc/resolv.conf while running (--default-resolver). */
  defaultResolver: boolean;
  /** Serve on sockets passed by systemd socket activation instead of --listen. */
  systemd: boolean;
  /** --user: whom to become after binding; null: nobody when root, else stay. */
  user: string | null;
  /** --search-domains; empty: the resolv-file's search line, when --enable-search. */
  searchDomains: string[];
  enableSearch: boolean;
  ndots: number;
  fwdNdots: number;
  noRec: boolean;
  /** Pooled connections per tls:// (and tcp://) upstream. */
  tlsPool: number;
  /** --bootstrap: plain resolvers for upstream names; empty: the plain upstreams. */
  bootstrap: Endpoint[];
  /** Extra CA files for tls:// upstreams, on top of the system store. */
  tlsCa: string[];
  tlsConnectTimeoutMs: number;
  tlsHandshakeTimeoutMs: number;
  tlsReadTimeoutMs: number;
  tlsIdleTimeoutMs: number;
  /** Queries per second per client prefix; 0: no limit. */
  rateLimit: number;
  rateLimitV4Prefix: number;
  rateLimitV6Prefix: number;
  rateLimitAction: RateLimitAction;
  rateLimitExempt: Cidr[];
  /** --negative-grace: ms a negative answer waits for agreement; -1: derived from latency (capped); 0: off. */
  negativeGraceMs: number;
  /** --ignore-address: replies holding these addresses count as no reply. */
  ignoreAddress: Cidr[];
  /** --bogus-nxdomain: replies holding these addresses become NXDOMAIN. */
  bogusNxdomain: Cidr[];
  stopDnsRebind: boolean;
  rebindLocalhostOk: boolean;
  /** --rebind-domain-ok: lower case, no trailing dot. */
  rebindDomainOk: string[];
  /** --race-width: upstreams top-k races at once. */
  raceWidth: number;
  /** --explore-share: share (0..1) of races on which hedged, top-k and auto ask every healthy upstream. */
  exploreShare: number;
  /** --latency-target: the p99 (ms) auto aims for; null: not set. */
  latencyTargetMs: number | null;
}

/**
 * Every default, once: commander's flag defaults and help text (cli/flags.ts)
 * and defaultOptions() both read this table.
 */
export const DEFAULTS = {
  listen: '127.0.0.1:53',
  resolvFile: '/etc/resolv.conf',
  strategy: 'all' as StrategyName,
  // Below glibc's 5 s per-try timeout, so a client always hears from raced first.
  timeoutMs: 4000,
  tryTimeoutMs: 500,
  cacheSize: 10000,
  /** 32 MiB: see DEFAULT_CACHE_MAX_BYTES in cache.ts. */
  cacheMaxBytes: 32 * 1024 * 1024,
  minCacheTtl: 0,
  maxCacheTtl: 86400,
  cacheSaveInterval: 300,
  negTtl: -1,
  logLevel: 'info' as LogLevel,
  forwardMax: 5000,
  ednsPacketMax: 1232,
  tcpIdleMs: 10000,
  maxTcpConnections: 256,
  // A quarter of the cap: one address cannot hold them all, and on a host whose local
  // clients all come from 127.0.0.1 a busy one only sheds its own idle connections.
  maxTcpPerClient: 64,
  /** The port CoreDNS uses for its metrics; what `raced status` asks by default. */
  metricsListen: '127.0.0.1:9153',
  /** Seconds; small, so an edited hosts file is seen soon by caching clients. */
  hostsTtl: 10,
  tlsPool: 2,
  tlsConnectTimeoutMs: 2000,
  tlsHandshakeTimeoutMs: 2000,
  tlsReadTimeoutMs: 3000,
  // Below the 10 s after which Cloudflare closes an idle connection, so raced usually closes first.
  tlsIdleTimeoutMs: 8000,
  rateLimitPrefix: '32,64',
  rateLimitAction: 'refuse' as RateLimitAction,
  raceWidth: 2,
  /** 2% of races ask every healthy upstream. */
  exploreShare: 0.02,
  ndots: 1,
  fwdNdots: 0,
  /** Hosts files are not polled. */
  hostsPoll: 0,
  workers: 1,
  /** What a bare --serve-stale (or RACED_SERVE_STALE=on) means, in seconds; without it: off (0). */
  serveStaleSeconds: 86400,
  /** -1: derived per race from the pending upstreams' latency. */
  negativeGraceMs: -1,
};

export function defaultOptions(): Options {
  return {
    listen: [parseEndpoint(DEFAULTS.listen, 53)],
    servers: [],
    serversFrom: '--server',
    routes: [],
    resolvFile: DEFAULTS.resolvFile,
    noResolv: false,
    strategy: DEFAULTS.strategy,
    timeoutMs: DEFAULTS.timeoutMs,
    tryTimeoutMs: DEFAULTS.tryTimeoutMs,
    cacheSize: DEFAULTS.cacheSize,
    cacheMaxBytes: DEFAULTS.cacheMaxBytes,
    minCacheTtl: DEFAULTS.minCacheTtl,
    maxCacheTtl: DEFAULTS.maxCacheTtl,
    negCache: true,
    negTtl: DEFAULTS.negTtl,
    serveStale: 0,
    prefetch: false,
    cacheFile: null,
    cacheSaveInterval: DEFAULTS.cacheSaveInterval,
    controlSocket: null,
    logQueries: false,
    logLevel: DEFAULTS.logLevel,
    forwardMax: DEFAULTS.forwardMax,
    allow: [],
    ednsPacketMax: DEFAULTS.ednsPacketMax,
    tcpIdleMs: DEFAULTS.tcpIdleMs,
    maxTcpConnections: DEFAULTS.maxTcpConnections,
    maxTcpPerClient: DEFAULTS.maxTcpPerClient,
    workers: DEFAULTS.workers,
    hedgeDelayMs: null,
    metricsListen: null,
    hostsFiles: [],
    hostsTtl: DEFAULTS.hostsTtl,
    hostsPoll: DEFAULTS.hostsPoll,
    hostsText: '',
    roundRobin: false,
    defaultResolver: false,
    systemd: false,
    user: null,
    searchDomains: [],
    enableSearch: false,
    ndots: DEFAULTS.ndots,
    fwdNdots: DEFAULTS.fwdNdots,
    noRec: false,
    tlsPool: DEFAULTS.tlsPool,
    bootstrap: [],
    tlsCa: [],
    tlsConnectTimeoutMs: DEFAULTS.tlsConnectTimeoutMs,
    tlsHandshakeTimeoutMs: DEFAULTS.tlsHandshakeTimeoutMs,
    tlsReadTimeoutMs: DEFAULTS.tlsReadTimeoutMs,
    tlsIdleTimeoutMs: DEFAULTS.tlsIdleTimeoutMs,
    rateLimit: 0,
    rateLimitV4Prefix: parse.rateLimitPrefix(DEFAULTS.rateLimitPrefix)[0],
    rateLimitV6Prefix: parse.rateLimitPrefix(DEFAULTS.rateLimitPrefix)[1],
    rateLimitAction: DEFAULTS.rateLimitAction,
    rateLimitExempt: [],
    negativeGraceMs: DEFAULTS.negativeGraceMs,
    ignoreAddress: [],
    bogusNxdomain: [],
    stopDnsRebind: false,
    rebindLocalhostOk: false,
    rebindDomainOk: [],
    raceWidth: DEFAULTS.raceWidth,
    exploreShare: DEFAULTS.exploreShare,
    latencyTargetMs: null,
  };
}

/** A value that does not parse; the message names what was wrong with it. */
export class OptionValueError extends RacedError {
  override name = 'OptionValueError';
  constructor(message: string) {
    super(ERROR_CODES.OPTION, message);
  }
}

/** Items of a repeatable flag; an environment variable may hold several, comma or space separated. */
export function splitList(value: string): string[] {
  return value.split(/[\s,]+/).filter(Boolean);
}

export function parseIntIn(value: string, min: number, max: number): number {
  if (!/^-?\d+$/.test(value.trim())) throw new OptionValueError(`expected a whole number, got '${value}'`);
  const n = Number(value);
  if (n < min || n > max) throw new OptionValueError(`must be between ${min} and ${max}`);
  return n;
}

/** A byte count: a whole number, optionally with k, m or g (KiB, MiB, GiB). */
export function parseBytes(value: string, min: number, max: number): number {
  const m = /^\s*(\d+)\s*([kmg]?)i?b?\s*$/i.exec(value);
  if (!m) throw new OptionValueError(`expected a byte count such as 33554432 or 32m, got '${value}'`);
  const n = Number(m[1]) * 1024 ** ' kmg'.indexOf((m[2] || ' ').toLowerCase());
  if (n < min || n > max) throw new OptionValueError(`must be between ${min} and ${max} bytes`);
  return n;
}

function wrap<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw new OptionValueError((err as Error).message);
  }
}

/** `ADDR…` or `/dom1/dom2/ADDR…` or `/dom/` (local). */
export function parseServerItem(s: string): ServerItem {
  if (!s.startsWith('/')) return { spec: parseUpstream(s) };
  // An address with a scheme (tls://, https://…/PATH) holds slashes of its own: it starts at the scheme.
  const schemed = /\/([a-z]+:\/\/.*)$/.exec(s);
  const parts = (schemed ? s.slice(0, schemed.index + 1) : s).split('/');
  const addr = schemed ? (parts.pop(), schemed[1]!) : parts.pop()!;
  const domains = parts.slice(1).filter(Boolean).map(normaliseDomain);
  if (domains.length === 0) throw new OptionValueError(`no domain in '${s}'`);
  for (const d of domains) if (!/^[a-z0-9_*.-]+$/.test(d)) throw new OptionValueError(`bad domain '${d}' in '${s}'`);
  const spec = addr === '' ? null : parseUpstream(addr);
  return { routes: domains.map((domain) => ({ domain, spec })) };
}

/** Where a value came from (commander's names); a higher rank wins: flags, then environment, then the file. */
export type ValueSource = 'cli' | 'env' | 'config' | 'default' | 'implied' | undefined;
const RANK: Record<string, number> = { cli: 3, env: 2, config: 1 };

/**
 * The strategy from --strategy, --strict-order and --all-servers, each from
 * wherever it came: the most precedent source wins whichever flag it set;
 * two that disagree at the same level are an error. None set: the default.
 */
export function resolveStrategy(
  given: { strategy?: StrategyName; strictOrder?: boolean; allServers?: boolean },
  source: (attr: 'strategy' | 'strictOrder' | 'allServers') => ValueSource,
): StrategyName {
  const said: { name: StrategyName; rank: number; flag: string }[] = [];
  const add = (attr: 'strategy' | 'strictOrder' | 'allServers', name: StrategyName | undefined, flag: string): void => {
    const rank = RANK[source(attr) ?? ''] ?? 0;
    if (name !== undefined && rank > 0) said.push({ name, rank, flag });
  };
  add('strategy', given.strategy, `--strategy ${given.strategy}`);
  add('strictOrder', given.strictOrder ? 'ordered' : undefined, '--strict-order');
  add('allServers', given.allServers ? 'all' : undefined, '--all-servers');
  if (said.length === 0) return given.strategy ?? DEFAULTS.strategy;
  const top = Math.max(...said.map((s) => s.rank));
  const winners = said.filter((s) => s.rank === top);
  const names = new Set(winners.map((s) => s.name));
  if (names.size > 1) {
    const where = top === 3 ? 'flags' : top === 2 ? 'environment' : '--conf-file';
    throw new OptionValueError(`${winners.map((w) => w.flag).join(' and ')} (${where}) ask for different strategies: give one`);
  }
  return winners[0]!.name;
}

export const parse = {
  endpoint: (v: string): Endpoint => wrap(() => parseEndpoint(v, 9153)),
  bootstrap: (v: string): Endpoint[] => splitList(v).map((s) => wrap(() => parseEndpoint(s, 53))),
  workers: (v: string): number => (v.trim() === 'auto' ? availableParallelism() : parseIntIn(v, 1, 256)),
  listen: (v: string): Endpoint[] => splitList(v).map((s) => wrap(() => parseEndpoint(s, 53, true))),
  server: (v: string): ServerItem[] => splitList(v).map((s) => wrap(() => parseServerItem(s))),
  allow: (v: string): Cidr[] => splitList(v).map((s) => wrap(() => parseCidr(s))),
  /** `domain`, or dnsmasq's `/dom1/dom2/`. */
  domains: (v: string): string[] => {
    const out = splitList(v.replace(/\//g, ' ')).map(normaliseDomain);
    if (out.length === 0) throw new OptionValueError(`no domain in '${v}'`);
    for (const d of out) if (!/^[a-z0-9_.-]+$/.test(d)) throw new OptionValueError(`bad domain '${d}'`);
    return out;
  },
  strategy: (v: string): StrategyName => {
    if (!(STRATEGY_NAMES as readonly string[]).includes(v)) {
      throw new OptionValueError(`unknown strategy '${v}' (one of: ${STRATEGY_NAMES.join(', ')})`);
    }
    return v as StrategyName;
  },
  /** A share: `2%` or `0.02`, from 0 to 1. */
  share: (v: string): number => {
    const m = /^\s*(\d+(?:\.\d+)?)\s*(%?)\s*$/.exec(v);
    const n = m ? Number(m[1]) / (m[2] ? 100 : 1) : NaN;
    if (!(n >= 0 && n <= 1)) throw new OptionValueError(`expected a share such as 2% or 0.02 (0 to 1), got '${v}'`);
    return n;
  },
  rateLimitPrefix: (v: string): [number, number] => {
    const m = /^\s*(\d{1,2})\s*,\s*(\d{1,3})\s*$/.exec(v);
    if (!m || Number(m[1]) < 1 || Number(m[1]) > 32 || Number(m[2]) < 1 || Number(m[2]) > 128) {
      throw new OptionValueError(`expected V4,V6 prefix lengths (1-32,1-128), got '${v}'`);
    }
    return [Number(m[1]), Number(m[2])];
  },
  rateLimitAction: (v: string): RateLimitAction => {
    if (!(RATE_LIMIT_ACTIONS as readonly string[]).includes(v)) {
      throw new OptionValueError(`unknown action '${v}' (one of: ${RATE_LIMIT_ACTIONS.join(', ')})`);
    }
    return v as RateLimitAction;
  },
  logLevel: (v: string): LogLevel => {
    if (!(LOG_LEVELS as readonly string[]).includes(v)) {
      throw new OptionValueError(`unknown log level '${v}' (one of: ${LOG_LEVELS.join(', ')})`);
    }
    return v as LogLevel;
  },
};
