// --conf-file: dnsmasq's `key=value` format, for the options raced shares
// with dnsmasq, so raced can be pointed at a dnsmasq.conf. A key raced does
// not support is an error naming it and its line, never silently ignored.
import { ERROR_CODES, RacedError } from '../errors.js';
import { readFileSync } from 'node:fs';
import { endpointLabel } from '../net/address.js';

/** What the file sets, as values of raced's own flags (commander attribute names), and the line of each value. */
export class ConfValues extends Map<string, string | boolean | string[]> {
  /** attribute → the line numbers of its values, in order (one for a single value). */
  readonly lines = new Map<string, number[]>();

  constructor(readonly file: string) {
    super();
  }

  /** "file:line" of the `i`-th value of `attr`, for messages. */
  where(attr: string, i = 0): string {
    const lines = this.lines.get(attr);
    const line = lines?.[Math.min(i, lines.length - 1)];
    return line === undefined ? this.file : `${this.file}:${line}`;
  }
}

export class ConfFileError extends RacedError {
  override name = 'ConfFileError';
  constructor(message: string) {
    super(ERROR_CODES.CONF_FILE, message);
  }
}

type Kind = 'flag' | 'value' | 'list';
/** dnsmasq key → [raced flag attribute, kind]. */
const KEYS: Record<string, [string, Kind]> = {
  server: ['server', 'list'],
  'all-servers': ['allServers', 'flag'],
  'strict-order': ['strictOrder', 'flag'],
  'cache-size': ['cacheSize', 'value'],
  'no-negcache': ['negcache', 'flag'],
  'neg-ttl': ['negTtl', 'value'],
  'resolv-file': ['resolvFile', 'value'],
  'no-resolv': ['resolv', 'flag'],
  'addn-hosts': ['addnHosts', 'list'],
  'min-cache-ttl': ['minCacheTtl', 'value'],
  'max-cache-ttl': ['maxCacheTtl', 'value'],
  'log-queries': ['logQueries', 'flag'],
  'negative-grace': ['negativeGrace', 'value'],
  // raced's own: the trade-off strategies (dnsmasq has no such keys).
  strategy: ['strategy', 'value'],
  'race-width': ['raceWidth', 'value'],
  'latency-target': ['latencyTarget', 'value'],
  'explore-share': ['exploreShare', 'value'],
  'ignore-address': ['ignoreAddress', 'list'],
  'bogus-nxdomain': ['bogusNxdomain', 'list'],
  'stop-dns-rebind': ['stopDnsRebind', 'flag'],
  'rebind-localhost-ok': ['rebindLocalhostOk', 'flag'],
  'rebind-domain-ok': ['rebindDomainOk', 'list'],
  user: ['user', 'value'],
  // raced's own (dnsmasq has none of these).
  'cache-file': ['cacheFile', 'value'],
  'cache-save-interval': ['cacheSaveInterval', 'value'],
  'control-socket': ['controlSocket', 'value'],
  bootstrap: ['bootstrap', 'list'],
  // Handled below: listen-address + port make --listen; address=/domain/ip are local answers.
  'listen-address': ['listenAddress', 'list'],
  port: ['port', 'value'],
  address: ['address', 'list'],
};

/** Flags that dnsmasq spells as "no-X" and commander stores as X=false. */
const NEGATED = new Set(['no-negcache', 'no-resolv']);

export function parseConfFile(text: string, file: string): ConfValues {
  const out = new ConfValues(file);
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    const eq = line.indexOf('=');
    const key = (eq < 0 ? line : line.slice(0, eq)).trim();
    const value = eq < 0 ? null : line.slice(eq + 1).trim();
    const spec = KEYS[key];
    if (!spec) throw new ConfFileError(`${file}:${i + 1}: unsupported option '${key}'`);
    const [attr, kind] = spec;
    if (kind === 'flag') {
      if (value !== null) throw new ConfFileError(`${file}:${i + 1}: '${key}' takes no value`);
      out.set(attr, !NEGATED.has(key));
      out.lines.set(attr, [i + 1]);
      return;
    }
    if (value === null || value === '') throw new ConfFileError(`${file}:${i + 1}: '${key}' needs a value`);
    if (kind === 'value') {
      out.set(attr, value);
      out.lines.set(attr, [i + 1]);
    } else {
      out.set(attr, [...((out.get(attr) as string[] | undefined) ?? []), value]);
      out.lines.set(attr, [...(out.lines.get(attr) ?? []), i + 1]);
    }
  });
  return out;
}

export function readConfFile(path: string): ConfValues {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfFileError(`cannot read --conf-file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return parseConfFile(text, path);
}

/**
 * listen-address (repeatable, each a comma list as dnsmasq takes it) and
 * port, as --listen values: every address gets the port. The line of each
 * value comes along for messages.
 */
export function listenFrom(values: ConfValues, defaultHost: string): { value: string; line: number | undefined }[] | null {
  const addrs = values.get('listenAddress') as string[] | undefined;
  const port = values.get('port') as string | undefined;
  if (!addrs && port === undefined) return null;
  const p = port ?? '53';
  if (!/^\d{1,5}$/.test(p) || Number(p) > 65535) throw new ConfFileError(`${values.where('port')}: port=${p}: expected a port number (0-65535)`);
  const lines = values.lines.get('listenAddress') ?? [];
  return (addrs ?? [defaultHost]).flatMap((list, i) =>
    list
      .split(/[\s,]+/)
      .filter(Boolean)
      .map((a) => ({ value: a.startsWith('[') ? `${a}:${p}` : endpointLabel(a, Number(p)), line: lines[i] })),
  );
}

/** address=/domain/ip → hosts-file lines (domain and every subdomain); address=/domain/ → a local domain. */
export function addressRules(values: ConfValues): { hostsLines: string[]; localDomains: string[] } {
  const hostsLines: string[] = [];
  const localDomains: string[] = [];
  for (const [i, v] of ((values.get('address') as string[] | undefined) ?? []).entries()) {
    const parts = v.split('/');
    if (parts[0] !== '' || parts.length < 3) throw new ConfFileError(`${values.where('address', i)}: address=${v}: expected /domain/[address]`);
    const ip = parts.pop()!;
    const domains = parts.slice(1).filter(Boolean);
    for (const d of domains) {
      if (ip === '' || ip === '#') localDomains.push(d);
      else hostsLines.push(`${ip} ${d} *.${d}`);
    }
  }
  return { hostsLines, localDomains };
}
