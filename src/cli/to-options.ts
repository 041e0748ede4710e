// Commander's parsed values (by attribute name) into the one options object,
// with the checks that weigh flags against each other.
import { withoutDot } from '../wire/names.js';
import { DEFAULTS, OptionValueError, defaultOptions, parse, resolveStrategy, type Options, type ServerItem, type ValueSource } from '../config/options.js';

export type Raw = Record<string, unknown>;

/** `source`: where each value came from (flag, environment, --conf-file), for the rules that weigh them. */
export function toOptions(raw: Raw, source: (attr: string) => ValueSource = () => 'cli'): Options {
  const o = defaultOptions();
  // The same address twice would fail to bind the second time: keep one.
  if (raw.listen) o.listen = [...new Map((raw.listen as Options['listen']).map((l) => [l.label, l])).values()];
  const items = (raw.server as ServerItem[] | undefined) ?? [];
  o.servers = items.flatMap((i) => ('spec' in i ? [i.spec] : []));
  o.routes = items.flatMap((i) => ('routes' in i ? i.routes : []));
  o.hedgeDelayMs = (raw.hedgeDelay as number | undefined) ?? null;
  o.resolvFile = raw.resolvFile as string;
  o.noResolv = raw.resolv === false;
  o.strategy = resolveStrategy({ strategy: raw.strategy as Options['strategy'], strictOrder: raw.strictOrder === true, allServers: raw.allServers === true }, source);
  o.raceWidth = raw.raceWidth as number;
  o.exploreShare = raw.exploreShare as number;
  o.latencyTargetMs = (raw.latencyTarget as number | undefined) ?? null;
  if (o.strategy === 'auto' && o.latencyTargetMs === null) throw new OptionValueError('--strategy auto needs --latency-target MS');
  o.timeoutMs = raw.timeout as number;
  o.tryTimeoutMs = raw.tryTimeout as number;
  o.cacheSize = raw.cacheSize as number;
  o.cacheMaxBytes = raw.cacheMaxBytes as number;
  o.minCacheTtl = raw.minCacheTtl as number;
  o.maxCacheTtl = raw.maxCacheTtl as number;
  o.negCache = raw.negcache !== false;
  o.negTtl = (raw.negTtl as number | undefined) ?? o.negTtl;
  o.serveStale = raw.serveStale === true ? DEFAULTS.serveStaleSeconds : ((raw.serveStale as number | undefined) ?? o.serveStale);
  o.prefetch = raw.prefetch === true;
  o.cacheFile = (raw.cacheFile as string | undefined) || null;
  o.cacheSaveInterval = raw.cacheSaveInterval as number;
  o.controlSocket = (raw.controlSocket as string | undefined) || null;
  o.logQueries = raw.logQueries === true;
  o.logLevel = raw.logLevel as Options['logLevel'];
  o.forwardMax = raw.dnsForwardMax as number;
  o.allow = (raw.allow as Options['allow'] | undefined) ?? [];
  o.ednsPacketMax = raw.ednsPacketMax as number;
  o.tcpIdleMs = raw.tcpIdleTimeout as number;
  o.maxTcpConnections = raw.maxTcpConnections as number;
  o.maxTcpPerClient = raw.maxTcpPerClient as number;
  o.workers = raw.workers as number;
  o.metricsListen = (raw.metricsListen as Options['metricsListen'] | undefined) ?? null;
  o.hostsFiles = [...((raw.hostsfile as string[] | undefined) ?? []), ...((raw.addnHosts as string[] | undefined) ?? [])];
  o.hostsTtl = raw.hostsTtl as number;
  o.hostsPoll = raw.hostsfilePoll as number;
  o.roundRobin = raw.roundRobin === true;
  o.defaultResolver = raw.defaultResolver === true;
  o.systemd = raw.systemd === true;
  o.user = (raw.user as string | undefined) ?? null;
  o.searchDomains = ((raw.searchDomains as string[] | undefined) ?? []).map(withoutDot);
  o.enableSearch = raw.enableSearch === true;
  o.ndots = raw.ndots as number;
  o.fwdNdots = raw.fwdNdots as number;
  o.noRec = raw.rec === false;
  o.tlsPool = raw.tlsPool as number;
  o.tlsCa = (raw.tlsCa as string[] | undefined) ?? [];
  o.bootstrap = (raw.bootstrap as Options['bootstrap'] | undefined) ?? [];
  o.tlsConnectTimeoutMs = raw.tlsConnectTimeout as number;
  o.tlsHandshakeTimeoutMs = raw.tlsHandshakeTimeout as number;
  o.tlsReadTimeoutMs = raw.tlsReadTimeout as number;
  o.tlsIdleTimeoutMs = raw.tlsIdleTimeout as number;
  o.rateLimit = (raw.rateLimit as number | undefined) ?? o.rateLimit;
  const prefix = typeof raw.rateLimitPrefix === 'string' ? parse.rateLimitPrefix(raw.rateLimitPrefix) : (raw.rateLimitPrefix as [number, number]);
  [o.rateLimitV4Prefix, o.rateLimitV6Prefix] = prefix;
  o.rateLimitAction = raw.rateLimitAction as Options['rateLimitAction'];
  o.rateLimitExempt = (raw.rateLimitExempt as Options['rateLimitExempt'] | undefined) ?? [];
  o.negativeGraceMs = (raw.negativeGrace as number | undefined) ?? o.negativeGraceMs;
  o.ignoreAddress = (raw.ignoreAddress as Options['ignoreAddress'] | undefined) ?? [];
  o.bogusNxdomain = (raw.bogusNxdomain as Options['bogusNxdomain'] | undefined) ?? [];
  o.stopDnsRebind = raw.stopDnsRebind === true;
  o.rebindLocalhostOk = raw.rebindLocalhostOk === true;
  o.rebindDomainOk = (raw.rebindDomainOk as string[] | undefined) ?? [];
  if (o.systemd && o.workers > 1) throw new OptionValueError('--systemd works with --workers 1 only');
  if (o.defaultResolver && !o.listen.some((l) => l.port === 53)) throw new OptionValueError('--default-resolver needs a --listen address on port 53 (resolv.conf cannot name a port)');
  if (o.defaultResolver && o.workers > 1) throw new OptionValueError('--default-resolver works with --workers 1 only');
  if (o.workers > 1 && o.listen.some((l) => l.port === 0)) throw new OptionValueError('--workers above 1 needs a fixed --listen port');
  if (o.cacheFile !== null && o.workers > 1) throw new OptionValueError('--cache-file works with --workers 1 only (each worker has its own cache)');
  if (o.cacheFile !== null && o.cacheSize === 0) throw new OptionValueError('--cache-file needs a cache (--cache-size above 0)');
  if (o.minCacheTtl > o.maxCacheTtl) throw new OptionValueError(`--min-cache-ttl ${o.minCacheTtl} is above --max-cache-ttl ${o.maxCacheTtl}`);
  return o;
}
