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
import { DEFAULTS, OptionValueError, defaultOptions, parse, parseIntIn, splitList, type Options, type ServerItem } from './config/options.js';
import { parseEndpoint } from './net/address.js';
import { Raced, StartupError } from './raced.js';
import { Logger, stderrIsJournal } from './log.js';
import cluster from 'node:cluster';
import { reportToPrimary, runPrimary } from './workers.js';
import { status } from './status.js';
import { ResolvTakeover } from './config/takeover.js';
import { ConfFileError, addressRules, listenFrom, readConfFile } from './config/conf-file.js';
import { normaliseDomain } from './router.js';
import { answersOn } from './selfcheck.js';
import { parseUpstream } from './upstream/upstream.js';

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
    .addOption(opt('--strategy <name>', 'all | ordered | hedged | fastest | round-robin | random').argParser(arg(parse.strategy)).default(DEFAULTS.strategy))
    .addOption(opt('--timeout <ms>', 'deadline for one client query, then SERVFAIL').argParser(int(1, 60000)).default(DEFAULTS.timeoutMs))
    .addOption(opt('--try-timeout <ms>', 'ordered: wait this long for one upstream before asking the next and marking it down').argParser(int(1, 60000)).default(DEFAULTS.tryTimeoutMs))
    .addOption(opt('--hedge-delay <ms>', 'hedged: ask the next upstream after this fixed delay (default: learned from latency)').argParser(int(1, 60000)))
    .addOption(opt('--negative-grace <ms>', 'an NXDOMAIN/NODATA waits this long for another upstream to agree or answer; 0: first valid answer wins (default: the pending upstreams\' p95 latency, at most 100)').argParser(int(0, 60000)))
    .addOption(opt('--ignore-address <addr|cidr>', 'a reply with this address in its answer counts as no reply (filtering upstreams: 0.0.0.0, ::); repeatable').argParser(list(parse.allow)))
    .addOption(opt('--bogus-nxdomain <addr|cidr>', 'a reply with this address in its answer becomes NXDOMAIN; repeatable').argParser(list(parse.allow)))
    .addOption(opt('--stop-dns-rebind', 'refuse answers with private, loopback or link-local addresses (DNS rebinding)'))
    .addOption(opt('--rebind-localhost-ok', 'with --stop-dns-rebind: let 127.0.0.0/8 and ::1 through'))
    .addOption(opt('--rebind-domain-ok <domain>', 'with --stop-dns-rebind: names under this domain may resolve to private addresses; repeatable, or /dom1/dom2/').argParser(list(parse.domains)))
    .addOption(opt('--cache-size <n>', 'answer cache entries; 0 disables the cache').argParser(int(0, 10_000_000)).default(DEFAULTS.cacheSize))
    .addOption(opt('--min-cache-ttl <s>', 'raise cached TTLs to at least this').argParser(int(0, 604800)).default(DEFAULTS.minCacheTtl))
    .addOption(opt('--max-cache-ttl <s>', 'lower cached TTLs to at most this').argParser(int(0, 604800)).default(DEFAULTS.maxCacheTtl))
    .addOption(opt('--no-negcache', 'do not cache NXDOMAIN/NODATA answers'))
    .addOption(opt('--neg-ttl <s>', 'cache negative answers without an SOA for this long (default: not at all)').argParser(int(0, 86400)))
    .addOption(opt('--serve-stale [s]', 'answer from expired entries for up to s seconds (default 86400) when upstreams fail').argParser(int(1, 604800)))
    .addOption(opt('--prefetch', 'refresh popular cache entries shortly before they expire'))
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
    .addOption(opt('--workers <n|auto>', 'processes answering queries (node:cluster), each with its own cache; auto = one per core').argParser(arg(parse.workers)).default(1))
    .addOption(opt('--rate-limit <qps>', 'queries per second per client prefix (a bucket of one second\'s worth); off by default').argParser(int(1, 10_000_000)))
    .addOption(opt('--rate-limit-prefix <v4,v6>', 'prefix lengths that count as one client for --rate-limit').argParser(arg(parse.rateLimitPrefix)).default(DEFAULTS.rateLimitPrefix))
    .addOption(opt('--rate-limit-action <action>', 'over the limit: refuse (REFUSED) | drop (no reply) | truncate (TC=1 over UDP; TCP then not limited)').argParser(arg(parse.rateLimitAction)).default(DEFAULTS.rateLimitAction))
    .addOption(opt('--rate-limit-exempt <cidr>', 'clients never rate-limited; repeatable').argParser(list(parse.allow)))
    .showHelpAfterError(false);
  return program;
}

type Raw = Record<string, unknown>;

export function toOptions(raw: Raw): Options {
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
  o.strategy = raw.strictOrder ? 'ordered' : raw.allServers ? 'all' : (raw.strategy as Options['strategy']);
  o.timeoutMs = raw.timeout as number;
  o.tryTimeoutMs = raw.tryTimeout as number;
  o.cacheSize = raw.cacheSize as number;
  o.minCacheTtl = raw.minCacheTtl as number;
  o.maxCacheTtl = raw.maxCacheTtl as number;
  o.negCache = raw.negcache !== false;
  o.negTtl = (raw.negTtl as number | undefined) ?? DEFAULTS.negTtl;
  o.serveStale = raw.serveStale === true ? 86400 : ((raw.serveStale as number | undefined) ?? 0);
  o.prefetch = raw.prefetch === true;
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
  o.searchDomains = ((raw.searchDomains as string[] | undefined) ?? []).map((d) => d.replace(/\.$/, ''));
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
  if (o.minCacheTtl > o.maxCacheTtl) throw new OptionValueError(`--min-cache-ttl ${o.minCacheTtl} is above --max-cache-ttl ${o.maxCacheTtl}`);
  return o;
}

async function run(opts: Options): Promise<void> {
  // journald stamps each line itself; a file or a terminal needs the time in the line.
  const log = new Logger(opts.logLevel, undefined, { timestamps: !opts.systemd && !stderrIsJournal() });
  if (opts.workers > 1 && cluster.isPrimary) {
    if (stopRequested()) process.exit(0);
    try {
      const running = runPrimary(opts.workers, log, opts.metricsListen);
      onSignal(() => {}); // the primary's own handlers are installed now
      await running;
      process.exit(0);
    } catch (err) {
      process.stderr.write(`raced: ${(err as Error).message}\n`);
      process.exit(1);
    }
  }
  let raced: Raced;
  let takeover: ResolvTakeover | null = null;
  try {
    if (opts.defaultResolver) {
      takeover = new ResolvTakeover(RESOLV_CONF);
      // Upstreams come from the host's original file, never from the live one raced rewrites.
      opts.noResolv = true;
      if (opts.servers.length === 0) opts.servers = upstreamsFrom(takeover, log);
      if (opts.enableSearch && opts.searchDomains.length === 0) opts.searchDomains = takeover.original().search;
    }
    raced = new Raced(opts, log);
    await raced.start();
    await raced.startMetrics(VERSION);
    if (takeover) {
      // Only once raced is seen answering does the host's resolv.conf change.
      const ep = await answersOn(raced.bound).catch(() => {
        throw new StartupError(`raced does not answer on ${raced.bound.map((b) => b.label).join(', ')}; ${RESOLV_CONF} left as it was`);
      });
      const ns = raced.bound.find((b) => b.port === 53) ?? ep;
      takeover.install(ns.host);
      log.info(`${RESOLV_CONF} now names only raced (${ns.host}); the original is in ${takeover.backup}`);
      process.on('uncaughtException', (err) => {
        log.error(`fatal: ${err.stack ?? err.message}`);
        takeover?.restore();
        process.exit(1);
      });
    }
    reportToPrimary({ type: 'ready' });
  } catch (err) {
    if (err instanceof StartupError) {
      if (cluster.isWorker) reportToPrimary({ type: 'fatal', message: err.message });
      else process.stderr.write(`raced: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  let stopping = false;
  const stop = (sig: string): void => {
    if (stopping) return;
    stopping = true;
    log.info(`${sig}: stopping; letting queries in flight finish`);
    void raced.stop(Math.min(opts.timeoutMs, 5000)).then(() => {
      if (takeover) {
        takeover.restore();
        log.info(`${RESOLV_CONF} restored`);
      }
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
 * Fills every option still at its default from the file (flags and
 * environment win), through the same parsers as the flags.
 */
function applyConfFile(program: Command, path: string): { hostsLines: string[]; localDomains: string[] } {
  const values = readConfFile(path);
  const fromUser = (attr: string): boolean => ['cli', 'env'].includes(program.getOptionValueSource(attr) ?? '');
  const set = (attr: string, raw: string | boolean | string[]): void => {
    if (fromUser(attr)) return;
    const option = program.options.find((o) => o.attributeName() === attr)!;
    if (typeof raw === 'boolean') return void program.setOptionValueWithSource(attr, raw, 'config');
    let value: unknown = undefined;
    for (const v of Array.isArray(raw) ? raw : [raw]) {
      try {
        value = option.parseArg ? option.parseArg(v, value) : v;
      } catch (err) {
        throw new ConfFileError(`${path}: ${option.long?.replace(/^--/, '')}=${v}: ${(err as Error).message}`);
      }
    }
    program.setOptionValueWithSource(attr, value, 'config');
  };
  for (const [attr, v] of values) {
    if (attr === 'listenAddress' || attr === 'port' || attr === 'address') continue;
    set(attr, v);
  }
  const listen = listenFrom(values, '127.0.0.1');
  if (listen) set('listen', listen);
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
  if (out.length === 0) throw new StartupError(`no nameserver in ${RESOLV_CONF} to use as upstream; give --server`);
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
    .action(async (o: { metricsUrl: string }) => {
      try {
        process.stdout.write((await status(o.metricsUrl)) + '\n');
        process.exit(0);
      } catch (err) {
        process.stderr.write(`raced status: ${(err as Error).message}\n`);
        process.exit(1);
      }
    });
  let opts: Options;
  try {
    if (argv[2] === 'status') {
      await program.parseAsync(argv);
      return;
    }
    // Without a subcommand the program itself runs raced; an action keeps
    // commander from showing help because subcommands exist.
    program.action(() => {});
    program.parse(argv);
    const confFile = program.opts().confFile as string | undefined;
    const conf = confFile ? applyConfFile(program, confFile) : null;
    opts = toOptions(program.opts());
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
      process.stderr.write(`error: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  await run(opts);
}

await main(process.argv);
