// Reading resolv.conf(5): nameservers become upstreams; search and options
// are kept for the host-front features.
import { readFileSync } from 'node:fs';
import { parseUpstream, type UpstreamSpec } from '../upstream/address.js';
import { watchPath } from '../watch.js';
import { withoutDot } from '../wire/names.js';

export interface ResolvConf {
  nameservers: string[];
  search: string[];
  options: string[];
}

export function parseResolvConf(text: string): ResolvConf {
  const out: ResolvConf = { nameservers: [], search: [], options: [] };
  for (const raw of text.split('\n')) {
    // Comments are whole lines (resolv.conf(5)); '#' inside a line is dnsmasq's ADDR#PORT.
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const [word, ...rest] = line.split(/\s+/);
    if (word === 'nameserver' && rest[0]) out.nameservers.push(rest[0]);
    else if (word === 'search' || word === 'domain') out.search = rest;
    else if (word === 'options') out.options.push(...rest);
  }
  return out;
}

/** Nameserver lines as upstreams; unparseable entries are reported (as from `path`), not fatal. */
export function nameserverUpstreams(nameservers: readonly string[], path: string, warn: (msg: string) => void): UpstreamSpec[] {
  const specs: UpstreamSpec[] = [];
  for (const ns of nameservers) {
    try {
      specs.push(parseUpstream(ns));
    } catch (err) {
      warn(`${path}: skipping nameserver '${ns}': ${(err as Error).message}`);
    }
  }
  return specs;
}

/** Upstreams named by a resolv.conf file; unparseable entries are reported, not fatal. */
export function readResolvUpstreams(path: string, warn: (msg: string) => void): UpstreamSpec[] {
  return nameserverUpstreams(parseResolvConf(readFileSync(path, 'utf8')).nameservers, path, warn);
}

/** A resolv.conf file's search domains without trailing dots; none when it cannot be read. */
export function readResolvSearch(path: string): string[] {
  try {
    return parseResolvConf(readFileSync(path, 'utf8')).search.map(withoutDot);
  } catch {
    return [];
  }
}

/** Calls `onChange` when the file's contents may have changed (stat polling: survives renames). */
export function watchResolv(path: string, onChange: () => void, intervalMs = 1000): () => void {
  return watchPath(path, intervalMs, onChange);
}
