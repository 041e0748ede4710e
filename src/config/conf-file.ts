// --conf-file: dnsmasq's `key=value` format, for the options raced shares
// with dnsmasq, so raced can be pointed at a dnsmasq.conf. A key raced does
// not support is an error naming it and its line, never silently ignored.
import { readFileSync } from 'node:fs';

/** What the file sets, as values of raced's own flags (commander attribute names). */
export type ConfValues = Map<string, string | boolean | string[]>;

export class ConfFileError extends Error {
  override name = 'ConfFileError';
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
  'ignore-address': ['ignoreAddress', 'list'],
  'bogus-nxdomain': ['bogusNxdomain', 'list'],
  'stop-dns-rebind': ['stopDnsRebind', 'flag'],
  'rebind-localhost-ok': ['rebindLocalhostOk', 'flag'],
  'rebind-domain-ok': ['rebindDomainOk', 'list'],
  bootstrap: ['bootstrap', 'list'],
  // Handled below: listen-address + port make --listen; address=/domain/ip are local answers.
  'listen-address': ['listenAddress', 'list'],
  port: ['port', 'value'],
  address: ['address', 'list'],
};

/** Flags that dnsmasq spells as "no-X" and commander stores as X=false. */
const NEGATED = new Set(['no-negcache', 'no-resolv']);

export function parseConfFile(text: string, file: string): ConfValues {
  const out: ConfValues = new Map();
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
      return;
    }
    if (value === null || value === '') throw new ConfFileError(`${file}:${i + 1}: '${key}' needs a value`);
    if (kind === 'value') out.set(attr, value);
    else out.set(attr, [...((out.get(attr) as string[] | undefined) ?? []), value]);
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

/** listen-address (repeatable) and port, as --listen values. */
export function listenFrom(values: ConfValues, defaultHost: string): string[] | null {
  const addrs = values.get('listenAddress') as string[] | undefined;
  const port = values.get('port') as string | undefined;
  if (!addrs && port === undefined) return null;
  const p = port ?? '53';
  return (addrs ?? [defaultHost]).map((a) => (a.includes(':') ? `[${a}]:${p}` : `${a}:${p}`));
}

/** address=/domain/ip → hosts-file lines (domain and every subdomain); address=/domain/ → a local domain. */
export function addressRules(values: ConfValues): { hostsLines: string[]; localDomains: string[] } {
  const hostsLines: string[] = [];
  const localDomains: string[] = [];
  for (const v of (values.get('address') as string[] | undefined) ?? []) {
    const parts = v.split('/');
    if (parts[0] !== '' || parts.length < 3) throw new ConfFileError(`address=${v}: expected /domain/[address]`);
    const ip = parts.pop()!;
    const domains = parts.slice(1).filter(Boolean);
    for (const d of domains) {
      if (ip === '' || ip === '#') localDomains.push(d);
      else hostsLines.push(`${ip} ${d} *.${d}`);
    }
  }
  return { hostsLines, localDomains };
}
