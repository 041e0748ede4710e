// Reading resolv.conf(5): nameservers become upstreams; search and options
// are kept for the host-front features.
import { readFileSync } from 'node:fs';
import { parseUpstream, type UpstreamSpec } from '../upstream/address.js';
import { watchPath } from '../watch.js';

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

/** Upstreams named by a resolv.conf file; unparseable entries are reported, not fatal. */
export function readResolvUpstreams(path: string, warn: (msg: string) => void): UpstreamSpec[] {
  const conf = parseResolvConf(readFileSync(path, 'utf8'));
  const specs: UpstreamSpec[] = [];
  for (const ns of conf.nameservers) {
    try {
      specs.push(parseUpstream(ns));
    } catch (err) {
      warn(`${path}: skipping nameserver '${ns}': ${(err as Error).message}`);
    }
  }
  return specs;
}

/** Calls `onChange` when the file's contents may have changed (stat polling: survives renames). */
export function watchResolv(path: string, onChange: () => void, intervalMs = 1000): () => void {
  return watchPath(path, intervalMs, onChange);
}
