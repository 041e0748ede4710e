// Hosts files (/etc/hosts format, plus go-dnsmasq's wildcard `*` as the
// left-most label): names answered locally with A/AAAA, NODATA for other
// types of a known name, PTR for the addresses. Never raced upstream.
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { printable } from '../guard.js';
import { ipBytes } from '../net/address.js';
import { normalName } from '../wire/names.js';

export interface HostRecord {
  v4: Buffer[];
  v6: Buffer[];
}

export interface HostsTable {
  /** Exact names, lower-case, no trailing dot. */
  names: Map<string, HostRecord>;
  /** `*.suffix` entries keyed by suffix. */
  wildcards: Map<string, HostRecord>;
  /** in-addr.arpa / ip6.arpa name → host name. */
  ptr: Map<string, string>;
}

export interface HostsProblem {
  file: string;
  line: number;
  message: string;
}

const LABEL = /^(\*|[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)$/;

function validName(name: string): boolean {
  if (name.length === 0 || name.length > 253) return false;
  const labels = name.split('.');
  return labels.every((l, i) => LABEL.test(l) && (l !== '*' || i === 0)) && labels.length >= 1;
}

export function emptyTable(): HostsTable {
  return { names: new Map(), wildcards: new Map(), ptr: new Map() };
}

/** An address as record data (A: 4 bytes, AAAA: 16), by net/address.ts's one parser; `ip` already passed isIP. */
function ipData(ip: string): Buffer {
  return Buffer.from(ipBytes(ip)!.bytes);
}

export function reverseName(ip: string): string {
  if (isIP(ip) === 4) return ip.split('.').reverse().join('.') + '.in-addr.arpa';
  const hex = ipData(ip).toString('hex');
  return [...hex].reverse().join('.') + '.ip6.arpa';
}

/** Adds one file's contents to `table`; returns the lines it skipped and why. */
export function parseHosts(text: string, file: string, table: HostsTable): HostsProblem[] {
  const problems: HostsProblem[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/#.*$/, '').trim();
    if (!line) return;
    const [addr, ...names] = line.split(/\s+/);
    const fam = isIP(addr!);
    if (fam === 0) return problems.push({ file, line: i + 1, message: `not an IP address: '${printable(addr!, 80)}'` });
    if (names.length === 0) return problems.push({ file, line: i + 1, message: `no name after ${addr}` });
    const bytes = ipData(addr!);
    let first: string | null = null;
    for (const n of names) {
      const name = normalName(n);
      if (!validName(name)) {
        problems.push({ file, line: i + 1, message: `bad name '${printable(n, 80)}'` });
        continue;
      }
      const wildcard = name.startsWith('*.');
      const map = wildcard ? table.wildcards : table.names;
      const key = wildcard ? name.slice(2) : name;
      let rec = map.get(key);
      if (!rec) map.set(key, (rec = { v4: [], v6: [] }));
      const list = fam === 4 ? rec.v4 : rec.v6;
      if (!list.some((b) => b.equals(bytes))) list.push(bytes);
      if (!wildcard) first ??= name;
    }
    const rev = reverseName(addr!);
    if (first && !table.ptr.has(rev)) table.ptr.set(rev, first);
  });
  return problems;
}

/** Reads every file; a file that cannot be read throws with its name and reason. */
export function loadHostsFiles(files: readonly string[], inline = ''): { table: HostsTable; problems: HostsProblem[] } {
  const table = emptyTable();
  const problems: HostsProblem[] = inline ? parseHosts(inline, '--conf-file address=', table) : [];
  for (const f of files) {
    let text: string;
    try {
      text = readFileSync(f, 'utf8');
    } catch (err) {
      throw new Error(`cannot read hosts file ${f}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    problems.push(...parseHosts(text, f, table));
  }
  return { table, problems };
}

export type HostsAnswer = { kind: 'addresses'; addrs: Buffer[] } | { kind: 'ptr'; name: string } | { kind: 'nodata' } | null;

/** What the hosts files say about `name` (lower-case, no trailing dot) for `qtype`. */
export function lookupHosts(t: HostsTable, name: string, qtype: number): HostsAnswer {
  if (qtype === 12) {
    const host = t.ptr.get(name);
    return host ? { kind: 'ptr', name: host } : null;
  }
  let rec = t.names.get(name);
  if (!rec) {
    // The longest wildcard suffix that matches a name not defined explicitly.
    for (let i = name.indexOf('.'); i >= 0 && !rec; i = name.indexOf('.', i + 1)) rec = t.wildcards.get(name.slice(i + 1));
  }
  if (!rec) return null;
  const addrs = qtype === 1 ? rec.v4 : qtype === 28 ? rec.v6 : [];
  return addrs.length > 0 ? { kind: 'addresses', addrs } : { kind: 'nodata' };
}
