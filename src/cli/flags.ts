// raced's flags: each a commander option (dnsmasq's name where dnsmasq has
// one) that can also come from RACED_<FLAG>, parsed by config/options.ts's
// parsers. Flags win over the environment, the environment over defaults; a
// bad value is commander's one-line "invalid argument".
import { Command, InvalidArgumentError, Option } from 'commander';
import { DEFAULTS, OptionValueError, parse, parseBytes, parseIntIn, splitList } from '../config/options.js';
import { ERROR_CODES } from '../errors.js';
import { ON_WORDS, envName } from './env.js';

/** Commander parser from one of ours: our errors become commander's "invalid argument". */
export function arg<T>(fn: (v: string) => T): (v: string) => T {
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

/** An option that can also come from RACED_<FLAG>. */
export function opt(flags: string, description: string): Option {
  const long = /--[a-z0-9-]+/.exec(flags)![0];
  return new Option(flags, description).env(envName(long));
}

/** --serve-stale's value: seconds, or on/yes/true for the default (a bare --serve-stale). */
function parseServeStale(v: string): number | true {
  if (ON_WORDS.has(v.trim().toLowerCase())) return true;
  return parseIntIn(v, 1, 604800);
}

/** --cache-max-bytes's default as a user would write it: 32m. */
const CACHE_MAX_SHOWN = `${DEFAULTS.cacheMaxBytes / 2 ** 20}m`;

export function buildProgram(version: string): Command {
  const program = new Command();
  program
    .name('raced')
    .description('DNS race-forwarder: asks every upstream at once and answers with the first valid reply.')
    .version(version, '-v, --version')
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
    .addOption(opt('--race-width <k>', 'top-k: race this many upstreams with the best latency at once').argParser(int(1, 64)).default(DEFAULTS.raceWidth))
    .addOption(opt('--latency-target <ms>', 'auto: use the cheapest fan-out whose predicted p99 is at most this').argParser(int(1, 60000)))
    .addOption(opt('--explore-share <share>', 'hedged, top-k, auto: ask every healthy upstream on this share of races (2% or 0.02; 0: never) to keep the trade-off predictions current').argParser(arg(parse.share)).default(DEFAULTS.exploreShare, `${DEFAULTS.exploreShare * 100}%`))
    .addOption(opt('--negative-grace <ms>', 'an NXDOMAIN/NODATA waits this long for another upstream to agree or answer; 0: first valid answer wins (default: the pending upstreams\' p95 latency, at most 100)').argParser(int(0, 60000)))
    .addOption(opt('--ignore-address <addr|cidr>', 'a reply with this address in its answer counts as no reply (filtering upstreams: 0.0.0.0, ::); repeatable').argParser(list(parse.allow)))
    .addOption(opt('--bogus-nxdomain <addr|cidr>', 'a reply with this address in its answer becomes NXDOMAIN; repeatable').argParser(list(parse.allow)))
    .addOption(opt('--stop-dns-rebind', 'refuse answers with private, loopback or link-local addresses (DNS rebinding)'))
    .addOption(opt('--rebind-localhost-ok', 'with --stop-dns-rebind: let 127.0.0.0/8 and ::1 through'))
    .addOption(opt('--rebind-domain-ok <domain>', 'with --stop-dns-rebind: names under this domain may resolve to private addresses; repeatable, or /dom1/dom2/').argParser(list(parse.domains)))
    .addOption(opt('--cache-size <n>', 'answer cache entries; 0 disables the cache').argParser(int(0, 10_000_000)).default(DEFAULTS.cacheSize))
    .addOption(opt('--cache-max-bytes <n>', `bound on the bytes of cached replies, least recently used go first; k, m, g suffixes (default: ${CACHE_MAX_SHOWN})`).argParser(arg((v) => parseBytes(v, 65536, 2 ** 40))).default(DEFAULTS.cacheMaxBytes, CACHE_MAX_SHOWN))
    .addOption(opt('--min-cache-ttl <s>', 'raise cached TTLs to at least this').argParser(int(0, 604800)).default(DEFAULTS.minCacheTtl))
    .addOption(opt('--max-cache-ttl <s>', 'lower cached TTLs to at most this').argParser(int(0, 604800)).default(DEFAULTS.maxCacheTtl))
    .addOption(opt('--no-negcache', 'do not cache NXDOMAIN/NODATA answers'))
    .addOption(opt('--neg-ttl <s>', 'cache negative answers without an SOA for this long (default: not at all)').argParser(int(0, 86400)))
    .addOption(opt('--serve-stale [s]', `answer from expired entries for up to s seconds (default ${DEFAULTS.serveStaleSeconds}) when upstreams fail; RACED_SERVE_STALE=on: the default`).argParser(arg(parseServeStale)))
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
    .addOption(opt('--ndots <n>', 'names with at least this many dots are tried as asked first').argParser(int(0, 15)).default(DEFAULTS.ndots))
    .addOption(opt('--fwd-ndots <n>', 'names with fewer dots are not forwarded (NXDOMAIN); 0: all are').argParser(int(0, 15)).default(DEFAULTS.fwdNdots))
    .addOption(opt('--no-rec', 'never forward: answer only from hosts files and the cache (REFUSED otherwise)'))
    .addOption(opt('--round-robin', 'rotate the order of A/AAAA records in every reply, cache hits included'))
    .addOption(opt('--hostsfile <path>', 'answer names from this hosts file (wildcard *.domain allowed); repeatable').argParser((v: string, prev: string[] | undefined) => [...(prev ?? []), ...splitList(v)]))
    .addOption(opt('--addn-hosts <path>', "dnsmasq's name for --hostsfile; repeatable").argParser((v: string, prev: string[] | undefined) => [...(prev ?? []), ...splitList(v)]))
    .addOption(opt('--hosts-ttl <s>', 'TTL of answers from hosts files').argParser(int(0, 86400)).default(DEFAULTS.hostsTtl))
    .addOption(opt('--hostsfile-poll <s>', 're-read hosts files this often when they change; 0: never').argParser(int(0, 86400)).default(DEFAULTS.hostsPoll))
    .addOption(opt('--metrics-listen <addr:port>', `serve Prometheus /metrics and /healthz here (off by default; e.g. ${DEFAULTS.metricsListen})`).argParser(arg(parse.endpoint)))
    .addOption(opt('--user <name>', 'after binding, run as this user (started as root: default nobody; --default-resolver keeps root)'))
    .addOption(opt('--workers <n|auto>', 'processes answering queries (node:cluster), each with its own cache; auto = one per core').argParser(arg(parse.workers)).default(DEFAULTS.workers))
    .addOption(opt('--rate-limit <qps>', 'queries per second per client prefix (a bucket of one second\'s worth); off by default').argParser(int(1, 10_000_000)))
    .addOption(opt('--rate-limit-prefix <v4,v6>', 'prefix lengths that count as one client for --rate-limit').argParser(arg(parse.rateLimitPrefix)).default(DEFAULTS.rateLimitPrefix))
    .addOption(opt('--rate-limit-action <action>', 'over the limit: refuse (REFUSED) | drop (no reply) | truncate (TC=1 over UDP; TCP then not limited)').argParser(arg(parse.rateLimitAction)).default(DEFAULTS.rateLimitAction))
    .addOption(opt('--rate-limit-exempt <cidr>', 'clients never rate-limited; repeatable').argParser(list(parse.allow)))
    .showHelpAfterError(false)
    // Every commander error is about what was typed: it ends with the same code as ours.
    .configureOutput({ outputError: (text, write) => write(text.replace(/\n?$/, ` (${ERROR_CODES.OPTION})\n`)) });
  return program;
}
