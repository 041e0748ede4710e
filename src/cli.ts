#!/usr/bin/env -S node --max-semi-space-size=4
// --max-semi-space-size=4 (MiB; V8's default is 16): a small young generation
// lets V8's memory reducer hand memory back after a burst. With 100,000 cached
// entries RSS settles at ~150 MB instead of ~220 MB (bench/cache.ts
// --memory-only). `npm start` and the benchmarks pass the same flag.
// Command line: flags (dnsmasq names where dnsmasq has one), each also read
// from RACED_<FLAG>; flags win over the environment, the environment over
// defaults. A bad value exits with status 2 and one line naming it.
// First: signal handlers (src/main.ts, the entry point, loads them before the rest of raced).
import { onSignal, stopRequested } from './signals.js';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { readFileSync } from 'node:fs';
import { DEFAULTS, OptionValueError, defaultOptions, parse, parseBytes, parseIntIn, resolveStrategy, splitList, type Options, type ServerItem, type ValueSource } from './config/options.js';
import { parseEndpoint } from './net/address.js';
import { Raced, StartupError } from './raced.js';
import { ERROR_CODES, RacedError, exitStatus } from './errors.js';
import { Logger, stderrIsJournal } from './log.js';
import cluster from 'node:cluster';
import { reportToPrimary, runPrimary, type ControlRequest, type WorkerMessage } from './workers.js';
import { status, statusTradeoffs } from './status.js';
import { ResolvTakeover } from './config/takeover.js';
import { ConfFileError, addressRules, listenFrom, readConfFile } from './config/conf-file.js';
import { normaliseDomain } from './router.js';
import { withoutDot } from './wire/names.js';
import { answersOn } from './selfcheck.js';
import { parseUpstream } from './upstream/address.js';
import { installProcessGuard, printable } from './guard.js';
import { dropPrivileges, plannedUser, unreadable, unwritableDir, type Account } from './privilege.js';
import { ControlError, localHandlers, runCommand, sendCommand, startControl } from './control.js';
import { performance } from 'node:perf_hooks';
import { unlinkSync } from 'node:fs';
import type { Server as NetServer } from 'node:net';

const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/** Commander parser from one of ours: our errors become commander's "invalid argument". */
function arg<T>(fn: (v: string) => T): (v: string) => T {
  return (v) => {
    try {
      return fn(v);
    } catch (err) {
      if (err instanceof OptionValueError) throw new InvalidArgumentError(err.message);
      throw err;
    }
  };
}

function list<T>(fn: (v: string) => T[]): (v: string, prev: T[] | undefined) => T[] {
  const one = arg(fn);
  return (v, prev) => [...(prev ?? []), ...one(v)];
}

const int = (min: number, max: number) => arg((v) => parseIntIn(v, min, max));

function envName(flag: string): string {
  return 'RACED_' + flag.replace(/^--/, '').replace(/-/g, '_').toUpperCase();
}

/** An option that can also come from RACED_<FLAG>. */
function opt(flags: string, description: string): Option {
  const long = /--[a-z0-9-]+/.exec(flags)![0];
  return new Option(flags, description).env(envName(long));
}

const BOOLEAN_FLAGS = [
  '--all-servers',
  '--strict-order',
  '--no-resolv',
  '--log-queries',
  '--no-negcache',
  '--prefetch',
  '--round-robin',
  '--default-resolver',
  '--systemd',
  '--enable-search',
  '--no-rec',
  '--stop-dns-rebind',
  '--rebind-localhost-ok',
];
const FALSE_WORDS = new Set(['', '0', 'false', 'no', 'off']);
const TRUE_WORDS = new Set(['1', 'true', 'yes', 'on']);
/** Flags with an optional value: RACED_X=on|yes|true is the flag alone (its default value), off|no|false|empty is not given. */
const OPTIONAL_VALUE_FLAGS = ['--serve-stale'];
const ON_WORDS = new Set(['true', 'yes', 'on']);
const OFF_WORDS = new Set(['', 'false', 'no', 'off']);

/** --serve-stale's value: seconds, or on/yes/true for the default (a bare --serve-stale). */
function parseServeStale(v: string): number | true {
  if (ON_WORDS.has(v.trim().toLowerCase())) return true;
  return parseIntIn(v, 1, 604800);
}

/**
 * Commander treats a boolean flag's variable as set whatever its value;
 * RACED_LOG_QUERIES=0 must mean off, and RACED_LOG_QUERIES=maybe an error.
 */
function normaliseBooleanEnv(env: NodeJS.ProcessEnv): string | null {
  for (const flag of BOOLEAN_FLAGS) {
    const name = envName(flag);
    const v = env[name];
    if (v === undefined) continue;
    const w = v.trim().toLowerCase();
    if (FALSE_WORDS.has(w)) delete env[name];
    else if (!TRUE_WORDS.has(w)) return `error: environment variable ${name}='${v}' is invalid: expected 1/0, true/false, yes/no or on/off`;
  }
  for (const flag of OPTIONAL_VALUE_FLAGS) {
    const name = envName(flag);
    const v = env[name];
    if (v !== undefined && OFF_WORDS.has(v.trim().toLowerCase())) delete env[name];
  }
  return null;
}

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('raced')
    .description('DNS race-forwarder: asks every upstream at once and answers with the first valid reply.')
    .version(VERSION, '-v, --version')
    .addOption(opt('--listen <addr[:port]>', `address to listen on, UDP and TCP; repeatable (default: ${DEFAULTS.listen})`).argParser(list(parse.listen)))
    .addOption(opt('--server <addr[:port]>', 'upstream resolver: ADDR, ADDR:PORT, ADDR#PORT, [V6]:PORT, tcp://ADDR, tls://NAME@ADDR[:853], https://NAME@ADDR[:443][/PATH], https://HOST[:443][/PATH]; /domain/ADDR for one domain, /domain/ to keep it local; repeatable; replaces --resolv-file').argParser(list(parse.server)))
    .addOption(opt('--resolv-file <path>', 'read upstreams from this resolv.conf; re-read when it changes').default(DEFAULTS.resolvFile))
    .addOption(opt('--no-resolv', 'do not read upstreams from the resolv-file'))
    .addOption(opt('--all-servers', 'race all upstreams at once (the default strategy)'))
    .addOption(opt('--strict-order', 'ordered primary: ask upstreams one after another, in order'))
    .addOption(opt('--strategy <name>', 'all | ordered | hedged | fastest | round-robin | random | top-k | auto').argParser(arg(parse.strategy)).default(DEFAULTS.strategy))
    .addOption(opt('--timeout <ms>', 'deadline for one client query, then SERVFAIL').argParser(int(1, 60000)).default(DEFAULTS.timeoutMs))
    .addOption(opt('--try-timeout <ms>', 'ordered: wait this long for one upstream before asking the next and marking it down').argParser(int(1, 60000)).default(DEFAULTS.tryTimeoutMs))
    .addOption(opt('--hedge-delay <ms>', 'hedged: ask the next upstream after this fixed delay (default: learned from latency)').argParser(int(1, 60000)))
    .addOption(opt('--race-width <k>', 'top-k: race this many upstreams with the best latency at once').argParser(int(1, 64)).default(2))
    .addOption(opt('--latency-target <ms>', 'auto: use the cheapest fan-out whose predicted p99 is at most this').argParser(int(1, 60000)))
    .addOption(opt('--explore-share <share>', 'hedged, top-k, auto: ask every healthy upstream on this share of races (2% or 0.02; 0: never) to keep the trade-off predictions current').argParser(arg(parse.share)).default(0.02, '2%'))
    .addOption(opt('--negative-grace <ms>', 'an NXDOMAIN/NODATA waits this long for another upstream to agree or answer; 0: first valid answer wins (default: the pending upstreams\' p95 latency, at most 100)').argParser(int(0, 60000)))
    .addOption(opt('--ignore-address <addr|cidr>', 'a reply with this address in its answer counts as no reply (filtering upstreams: 0.0.0.0, ::); repeatable').argParser(list(parse.allow)))
    .addOption(opt('--bogus-nxdomain <addr|cidr>', 'a reply with this address in its answer becomes NXDOMAIN; repeatable').argParser(list(parse.allow)))
    .addOption(opt('--stop-dns-rebind', 'refuse answers with private, loopback or link-local addresses (DNS rebinding)'))
    .addOption(opt('--rebind-localhost-ok', 'with --stop-dns-rebind: let 127.0.0.0/8 and ::1 through'))
    .addOption(opt('--rebind-domain-ok <domain>', 'with --stop-dns-rebind: names under this domain may resolve to private addresses; repeatable, or /dom1/dom2/').argParser(list(parse.domains)))
    .addOption(opt('--cache-size <n>', 'answer cache entries; 0 disables the cache').argParser(int(0, 10_000_000)).default(DEFAULTS.cacheSize))
    .addOption(opt('--cache-max-bytes <n>', 'bound on the bytes of cached replies, least recently used go first; k, m, g suffixes (default: 32m)').argParser(arg((v) => parseBytes(v, 65536, 2 ** 40))).default(DEFAULTS.cacheMaxBytes, '32m'))
    .addOption(opt('--min-cache-ttl <s>', 'raise cached TTLs to at least this').argParser(int(0, 604800)).default(DEFAULTS.minCacheTtl))
    .addOption(opt('--max-cache-ttl <s>', 'lower cached TTLs to at most this').argParser(int(0, 604800)).default(DEFAULTS.maxCacheTtl))
    .addOption(opt('--no-negcache', 'do not cache NXDOMAIN/NODATA answers'))
    .addOption(opt('--neg-ttl <s>', 'cache negative answers without an SOA for this long (default: not at all)').argParser(int(0, 86400)))
    .addOption(opt('--serve-stale [s]', 'answer from expired entries for up to s seconds (default 86400) when upstreams fail; RACED_SERVE_STALE=on: the default').argParser(arg(parseServeStale)))
    .addOption(opt('--prefetch', 'refresh popular cache entries shortly before they expire'))
    .addOption(opt('--cache-file <path>', 'save the cache here on exit and every --cache-save-interval, load it at start (mode 0600; --workers 1 only)'))
    .addOption(opt('--cache-save-interval <s>', 'seconds between saves of --cache-file; 0: only on exit and on `raced cache save`').argParser(int(0, 604800)).default(DEFAULTS.cacheSaveInterval))
    .addOption(opt('--control-socket <path>', 'take `raced cache …` and `raced reload` commands on this unix socket (mode 0600; off by default)'))
    .addOption(opt('--log-queries', 'log every query and its reply'))
    .addOption(opt('--log-level <level>', 'error | warn | info | debug').argParser(arg(parse.logLevel)).default(DEFAULTS.logLevel))
    .addOption(opt('--dns-forward-max <n>', 'client queries in flight at most; beyond: REFUSED').argParser(int(1, 1_000_000)).default(DEFAULTS.forwardMax))
    .addOption(opt('--allow <cidr>', 'clients allowed besides loopback; repeatable (others get REFUSED)').argParser(list(parse.allow)))
    .addOption(opt('--edns-packet-max <bytes>', 'largest UDP reply to a client, and the EDNS size advertised upstream').argParser(int(512, 4096)).default(DEFAULTS.ednsPacketMax))
    .addOption(opt('--tcp-idle-timeout <ms>', 'close a client TCP connection idle this long').argParser(int(100, 600000)).default(DEFAULTS.tcpIdleMs))
    .addOption(opt('--max-tcp-connections <n>', 'client TCP connections per listen address at most; at the cap the longest-idle one is closed for a new one').argParser(int(1, 100000)).default(DEFAULTS.maxTcpConnections))
    .addOption(opt('--max-tcp-per-client <n>', "client TCP connections from one address at most; beyond, that address's longest-idle one is closed").argParser(int(1, 100000)).default(DEFAULTS.maxTcpPerClient))
    .addOption(opt('--tls-pool <n>', 'persistent connections per tls://, tcp:// or https:// upstream, each carrying many queries at once (https: another only when the server\'s stream limit is reached)').argParser(int(1, 64)).default(DEFAULTS.tlsPool))
    .addOption(opt('--bootstrap <addr[:port]>', 'plain DNS resolver used only to resolve upstream names (https://HOST), A and AAAA; repeatable (default: the plain upstreams)').argParser(list(parse.bootstrap)))
    .addOption(opt('--tls-ca <file>', 'also trust the CA certificates in this PEM file for tls:// and https:// upstreams (the system store is always trusted); repeatable').argParser((v: string, prev: string[] | undefined) => [...(prev ?? []), ...splitList(v)]))
    .addOption(opt('--tls-connect-timeout <ms>', 'give up on a TCP connect to a tls:// or tcp:// upstream after this long').argParser(int(10, 60000)).default(DEFAULTS.tlsConnectTimeoutMs))
    .addOption(opt('--tls-handshake-timeout <ms>', 'give up on a TLS handshake after this long').argParser(int(10, 60000)).default(DEFAULTS.tlsHandshakeTimeoutMs))
    .addOption(opt('--tls-read-timeout <ms>', 'drop an upstream connection that has queries out and sends nothing for this long; its queries go out again on another').argParser(int(10, 60000)).default(DEFAULTS.tlsReadTimeoutMs))
    .addOption(opt('--tls-idle-timeout <ms>', "close an upstream connection unused this long (sooner if the server's EDNS keepalive says so)").argParser(int(10, 600000)).default(DEFAULTS.tlsIdleTimeoutMs))
    .addOption(opt('--conf-file <path>', "read options from a dnsmasq-style key=value file (flags and environment win over it)"))
    .addOption(opt('--systemd', 'serve on the sockets passed by systemd socket activation (LISTEN_FDS) instead of --listen'))
    .addOption(opt('--default-resolver', "make raced the host's only nameserver in /etc/resolv.conf while it runs (its nameservers become the upstreams); restored on exit"))
    .addOption(opt('--search-domains <list>', 'search domains, comma separated (default: the resolv-file\'s search line)').argParser((v: string, prev: string[] | undefined) => [...(prev ?? []), ...splitList(v)]))
    .addOption(opt('--enable-search', 'qualify names with the search domains for clients that do not (musl)'))
    .addOption(opt('--ndots <n>', 'names with at least this many dots are tried as asked first').argParser(int(0, 15)).default(1))
    .addOption(opt('--fwd-ndots <n>', 'names with fewer dots are not forwarded (NXDOMAIN); 0: all are').argParser(int(0, 15)).default(0))
    .addOption(opt('--no-rec', 'never forward: answer only from hosts files and the cache (REFUSED otherwise)'))
    .addOption(opt('--round-robin', 'rotate the order of A/AAAA records in every reply, cache hits included'))
    .addOption(opt('--hostsfile <path>', 'answer names from this hosts file (wildcard *.domain allowed); repeatable').argParser((v: string, prev: string[] | undefined) => [...(prev ?? []), ...splitList(v)]))
    .addOption(opt('--addn-hosts <path>', "dnsmasq's name for --hostsfile; repeatable").argParser((v: string, prev: string[] | undefined) => [...(prev ?? []), ...splitList(v)]))
    .addOption(opt('--hosts-ttl <s>', 'TTL of answers from hosts files').argParser(int(0, 86400)).default(DEFAULTS.hostsTtl))
    .addOption(opt('--hostsfile-poll <s>', 're-read hosts files this often when they change; 0: never').argParser(int(0, 86400)).default(0))
    .addOption(opt('--metrics-listen <addr:port>', `serve Prometheus /metrics and /healthz here (off by default; e.g. ${DEFAULTS.metricsListen})`).argParser(arg(parse.endpoint)))
    .addOption(opt('--user <name>', 'after binding, run as this user (started as root: default nobody; --default-resolver keeps root)'))
    .addOption(opt('--workers <n|auto>', 'processes answering queries (node:cluster), each with its own cache; auto = one per core').argParser(arg(parse.workers)).default(1))
    .addOption(opt('--rate-limit <qps>', 'queries per second per client prefix (a bucket of one second\'s worth); off by default').argParser(int(1, 10_000_000)))
    .addOption(opt('--rate-limit-prefix <v4,v6>', 'prefix lengths that count as one client for --rate-limit').argParser(arg(parse.rateLimitPrefix)).default(DEFAULTS.rateLimitPrefix))
    .addOption(opt('--rate-limit-action <action>', 'over the limit: refuse (REFUSED) | drop (no reply) | truncate (TC=1 over UDP; TCP then not limited)').argParser(arg(parse.rateLimitAction)).default(DEFAULTS.rateLimitAction))
    .addOption(opt('--rate-limit-exempt <cidr>', 'clients never rate-limited; repeatable').argParser(list(parse.allow)))
    .showHelpAfterError(false)
    // Every commander error is about what was typed: it ends with the same code as ours.
    .configureOutput({ outputError: (text, write) => write(text.replace(/\n?$/, ` (${ERROR_CODES.OPTION})\n`)) });
  return program;
}

type Raw = Record<string, unknown>;

/** `source`: where each value came from (flag, environment, --conf-file), for the rules that weigh them. */
export function toOptions(raw: Raw, source: (attr: string) => ValueSource = () => 'cli'): Options {
  const o = defaultOptions();
  // The same address twice would fail to bind the second time: keep one.
  if (raw.listen) o.listen = [...new Map((raw.listen as Options['listen']).map((l) => [l.label, l])).values()];
  else o.listen = [parseEndpoint(DEFAULTS.listen, 53)];
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
  o.negTtl = (raw.negTtl as number | undefined) ?? DEFAULTS.negTtl;
  o.serveStale = raw.serveStale === true ? 86400 : ((raw.serveStale as number | undefined) ?? 0);
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
  o.rateLimit = (raw.rateLimit as number | undefined) ?? 0;
  const prefix = typeof raw.rateLimitPrefix === 'string' ? parse.rateLimitPrefix(raw.rateLimitPrefix) : (raw.rateLimitPrefix as [number, number]);
  [o.rateLimitV4Prefix, o.rateLimitV6Prefix] = prefix;
  o.rateLimitAction = raw.rateLimitAction as Options['rateLimitAction'];
  o.rateLimitExempt = (raw.rateLimitExempt as Options['rateLimitExempt'] | undefined) ?? [];
  o.negativeGraceMs = (raw.negativeGrace as number | undefined) ?? -1;
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

async function run(opts: Options): Promise<void> {
  // journald stamps each line itself; a file or a terminal needs the time in the line.
  const log = new Logger(opts.logLevel, undefined, { timestamps: !opts.systemd && !stderrIsJournal() });
  let takeover: ResolvTakeover | null = null;
  // Nothing a client or an upstream sends may end raced: see src/guard.ts for what is trusted after.
  installProcessGuard(log, () => {
    if (takeover) logRestore(takeover, log);
  });
  if (opts.workers > 1 && cluster.isPrimary) {
    if (stopRequested()) process.exit(0);
    try {
      const running = runPrimary(opts.workers, log, opts.metricsListen, opts.controlSocket);
      onSignal(() => {}); // the primary's own handlers are installed now
      await running;
      process.exit(0);
    } catch (err) {
      process.stderr.write(`raced: ${(err as Error).message}\n`);
      process.exit(1);
    }
  }
  let raced: Raced;
  let control: NetServer | null = null;
  try {
    // Decided before binding, so a wrong --user fails before anything is touched.
    const become = plannedUser(opts.user, opts.defaultResolver);
    if (opts.defaultResolver) {
      takeover = new ResolvTakeover(RESOLV_CONF);
      // Upstreams come from the host's original file, never from the live one raced rewrites.
      opts.noResolv = true;
      if (opts.servers.length === 0) {
        opts.servers = upstreamsFrom(takeover, log);
        opts.serversFrom = RESOLV_CONF;
      }
      if (opts.enableSearch && opts.searchDomains.length === 0) opts.searchDomains = takeover.original().search;
    }
    raced = new Raced(opts, log);
    await raced.start();
    await raced.startMetrics(VERSION);
    if (opts.controlSocket !== null && cluster.isWorker) {
      // The primary holds the socket and passes each command on.
      const handlers = localHandlers(raced.cache, raced.cacheFile, () => performance.now());
      process.on('message', (m: ControlRequest) => {
        if (m?.type !== 'control') return;
        runCommand(m.line, handlers).then(
          (lines) => process.send!({ type: 'control-reply', seq: m.seq, lines, error: null } satisfies WorkerMessage),
          (err: Error) => process.send!({ type: 'control-reply', seq: m.seq, lines: null, error: err.message } satisfies WorkerMessage),
        );
      });
    } else if (opts.controlSocket !== null) {
      // Bound before the privilege drop, owned by the user raced was started as.
      control = await startControl(opts.controlSocket, localHandlers(raced.cache, raced.cacheFile, () => performance.now()), log).catch(async (err: Error) => {
        await raced.stop(0);
        throw new StartupError(ERROR_CODES.CONTROL, err.message);
      });
      log.info(`control socket on ${opts.controlSocket}`);
    }
    if (takeover) {
      // Only once raced is seen answering does the host's resolv.conf change.
      const ep = await answersOn(raced.bound).catch(() => {
        throw new StartupError(ERROR_CODES.TAKEOVER, `raced does not answer on ${raced.bound.map((b) => b.label).join(', ')}; ${RESOLV_CONF} left as it was`);
      });
      const ns = raced.bound.find((b) => b.port === 53) ?? ep;
      takeover.install(ns.host);
      log.info(`${RESOLV_CONF} now names only raced (${ns.host}); the original (${takeover.describeOriginal()}) is in ${takeover.backup}`);
      if (process.getuid?.() === 0) log.info(`--default-resolver: raced keeps root to restore ${RESOLV_CONF} when it stops`);
    }
    if (become !== null && dropOrStay(become, opts.user !== null, log)) {
      log.info(`running as ${become.name} (uid ${become.uid}, gid ${become.gid})`);
      const later = [...(opts.servers.length === 0 && !opts.noResolv ? [opts.resolvFile] : []), ...opts.hostsFiles];
      for (const f of unreadable(later)) log.warn(`${f} is not readable by ${become.name}: changes to it will not be seen (make it readable, or give --user)`);
      if (opts.cacheFile !== null && unwritableDir(opts.cacheFile)) log.warn(`the directory of --cache-file ${opts.cacheFile} is not writable by ${become.name}: the cache will not be saved (give ${become.name} a directory, e.g. /var/cache/raced, or give --user)`);
    }
    reportToPrimary({ type: 'ready' });
  } catch (err) {
    if (control !== null && opts.controlSocket !== null) {
      // A late failure (take-over, --user) leaves no socket file behind.
      control.close();
      try {
        unlinkSync(opts.controlSocket);
      } catch {
        // the next start replaces it
      }
    }
    if (err instanceof RacedError) {
      // The code closes the line: scripts match it, people read the rest.
      const line = `${err.message} (${err.code})`;
      if (cluster.isWorker) reportToPrimary({ type: 'fatal', message: line });
      else process.stderr.write(`raced: ${line}\n`);
      process.exit(exitStatus(err.code));
    }
    throw err;
  }
  let stopping = false;
  const stop = (sig: string): void => {
    if (stopping) return;
    stopping = true;
    log.info(`${sig}: stopping; letting queries in flight finish`);
    control?.close();
    void raced.stop(Math.min(opts.timeoutMs, 5000)).then(() => {
      // After a privilege drop the socket's directory may not let raced remove it: the next start replaces it.
      if (opts.controlSocket !== null) {
        try {
          unlinkSync(opts.controlSocket);
        } catch {
          // see above
        }
      }
      if (takeover) logRestore(takeover, log);
      process.exit(0);
    });
  };
  onSignal((sig) => {
    if (sig !== 'SIGHUP') return stop(sig);
    log.info('SIGHUP: reloading upstreams');
    raced.reload();
  });
}

const RESOLV_CONF = '/etc/resolv.conf';

/**
 * Drops to `a`; false when raced stays as it is. Root inside a user namespace
 * (a container, `unshare -r`) may be unable to switch to a user the namespace
 * does not map: with the implicit default (no --user) raced then says so and
 * runs on as it is, rather than not at all; an explicit --user is an error.
 */
function dropOrStay(a: Account, explicit: boolean, log: Logger): boolean {
  const gid = process.getegid?.();
  try {
    dropPrivileges(a);
    return true;
  } catch (err) {
    const unchanged = process.geteuid?.() === 0 && process.getegid?.() === gid;
    if (explicit || !unchanged) throw err;
    log.warn(`${(err as Error).message}; running on as uid 0 (give --user to make this an error)`);
    return false;
  }
}

/** Gives resolv.conf back and says truly what happened. */
function logRestore(takeover: ResolvTakeover, log: Logger): void {
  const what = takeover.describeOriginal();
  try {
    const r = takeover.restore();
    if (r === 'restored') log.info(`${RESOLV_CONF} restored (${what})`);
    else if (r === 'kept') log.warn(`${RESOLV_CONF} was rewritten by another program while raced ran: left as it is`);
  } catch (err) {
    log.error(`cannot restore ${RESOLV_CONF} from ${takeover.backup}: ${(err as Error).message}`);
  }
}

/**
 * Fills every option still at its default from the file (flags and
 * environment win), through the same parsers as the flags.
 */
function applyConfFile(program: Command, path: string): { hostsLines: string[]; localDomains: string[] } {
  const values = readConfFile(path);
  const fromUser = (attr: string): boolean => ['cli', 'env'].includes(program.getOptionValueSource(attr) ?? '');
  /** `where(i)`: the file and line of the i-th value, for messages. */
  const set = (attr: string, raw: string | boolean | string[], where: (i: number) => string = (i) => values.where(attr, i)): void => {
    if (fromUser(attr)) return;
    const option = program.options.find((o) => o.attributeName() === attr)!;
    if (typeof raw === 'boolean') return void program.setOptionValueWithSource(attr, raw, 'config');
    let value: unknown = undefined;
    for (const [i, v] of (Array.isArray(raw) ? raw : [raw]).entries()) {
      try {
        value = option.parseArg ? option.parseArg(v, value) : v;
      } catch (err) {
        throw new ConfFileError(`${where(i)}: ${option.long?.replace(/^--/, '')}=${printable(v)}: ${(err as Error).message}`);
      }
    }
    program.setOptionValueWithSource(attr, value, 'config');
  };
  for (const [attr, v] of values) {
    if (attr === 'listenAddress' || attr === 'port' || attr === 'address') continue;
    set(attr, v);
  }
  const listen = listenFrom(values, '127.0.0.1');
  if (listen) {
    set(
      'listen',
      listen.map((l) => l.value),
      (i) => (listen[i]!.line === undefined ? values.where('port') : `${path}:${listen[i]!.line}`),
    );
  }
  return addressRules(values);
}

/** The host's nameservers as upstreams; raced's own addresses are skipped later, with a warning. */
function upstreamsFrom(takeover: ResolvTakeover, log: Logger): Options['servers'] {
  const out: Options['servers'] = [];
  for (const ns of takeover.original().nameservers) {
    try {
      out.push(parseUpstream(ns));
    } catch (err) {
      log.warn(`${RESOLV_CONF}: skipping nameserver '${ns}': ${(err as Error).message}`);
    }
  }
  if (out.length === 0) throw new StartupError(ERROR_CODES.TAKEOVER, `no nameserver in ${RESOLV_CONF} to use as upstream; give --server`);
  return out;
}

function defaultMetricsUrl(): string {
  const env = process.env.RACED_METRICS_LISTEN;
  let label = DEFAULTS.metricsListen;
  try {
    if (env) label = parseEndpoint(env, 9153).label;
  } catch {
    // a bad RACED_METRICS_LISTEN: fall back to the default address
  }
  return `http://${label}/metrics`;
}

export async function main(argv: string[]): Promise<void> {
  const envError = normaliseBooleanEnv(process.env);
  if (envError) {
    process.stderr.write(envError + '\n');
    process.exit(2);
  }
  const program = buildProgram();
  program.exitOverride();
  program
    .command('status')
    .description("one line per upstream from a running raced's metrics: state, queries, win share, p50/p95, errors")
    .option('--metrics-url <url>', 'where raced serves /metrics', defaultMetricsUrl())
    .option('--tradeoffs', "each fan-out option's predicted latency and upstream cost (GET /tradeoffs), the one in use marked")
    .action(async (o: { metricsUrl: string; tradeoffs?: boolean }) => {
      try {
        process.stdout.write((await (o.tradeoffs ? statusTradeoffs(o.metricsUrl) : status(o.metricsUrl))) + '\n');
        process.exit(0);
      } catch (err) {
        process.stderr.write(`raced status: ${(err as Error).message}\n`);
        process.exit(1);
      }
    });
  const socketOption = (): Option => opt('--control-socket <path>', 'the --control-socket of the running raced');
  const command = (line: string) => async (sub: { controlSocket?: string }) => {
    const name = `raced ${line.split(' ').slice(0, 2).join(' ')}`;
    // Given before or after the subcommand's name, --control-socket may land on the program or on the subcommand.
    const o = { controlSocket: sub.controlSocket || (program.opts().controlSocket as string | undefined) };
    if (!o.controlSocket) {
      process.stderr.write(`${name}: give --control-socket PATH (or RACED_CONTROL_SOCKET), the socket raced runs with\n`);
      process.exit(2);
    }
    try {
      process.stdout.write(await sendCommand(o.controlSocket, line));
      process.exit(0);
    } catch (err) {
      if (!(err instanceof ControlError)) throw err;
      process.stderr.write(`${name}: ${err.message}\n`);
      process.exit(1);
    }
  };
  const cache = program.command('cache').description('commands to the running raced\'s cache, over its --control-socket');
  cache
    .command('flush [name]')
    .description('empty the cache, or drop every entry for NAME')
    .addOption(socketOption())
    .action((name: string | undefined, o: { controlSocket?: string }) => command(name === undefined ? 'cache flush' : `cache flush ${name}`)(o));
  cache.command('dump').description('one line per entry: name, type, rcode, TTL left').addOption(socketOption()).action(command('cache dump'));
  cache.command('save').description('write the --cache-file now').addOption(socketOption()).action(command('cache save'));
  program.command('reload').description('the same as SIGHUP: re-read the resolv-file and hosts files').addOption(socketOption()).action(command('reload'));
  let opts: Options;
  try {
    if (['status', 'cache', 'reload'].includes(argv[2] ?? '')) {
      await program.parseAsync(argv);
      return;
    }
    // Without a subcommand the program itself runs raced; an action keeps
    // commander from showing help because subcommands exist.
    let serve = false;
    program.action(() => {
      serve = true;
    });
    program.parse(argv);
    // A subcommand after the program's options (`raced --control-socket P cache dump`) ran its own action: no raced to start.
    if (!serve) return;
    const confFile = program.opts().confFile as string | undefined;
    const conf = confFile ? applyConfFile(program, confFile) : null;
    opts = toOptions(program.opts(), (attr) => program.getOptionValueSource(attr) as ValueSource);
    if (conf) {
      opts.hostsText = conf.hostsLines.join('\n');
      opts.routes.push(...conf.localDomains.map((domain) => ({ domain: normaliseDomain(domain), spec: null })));
    }
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') process.exit(0);
      process.exit(2); // commander already printed the one-line reason
    }
    if (err instanceof OptionValueError || err instanceof ConfFileError) {
      // A conf-file line can be anything (megabytes, control bytes): escaped and cut.
      process.stderr.write(`error: ${printable(err.message, 500)} (${err.code})\n`);
      process.exit(exitStatus(err.code));
    }
    throw err;
  }
  await run(opts);
}

await main(process.argv);
