// Which upstreams a query may go to: per-domain rules first (dnsmasq's
// --server=/example.com/ADDR, longest suffix wins; an empty address means the
// domain is local and never forwarded), else the default set. SIGHUP swaps
// the sets without dropping races in flight (they keep their own list).
import { HEADER_LEN } from './wire/constants.js';
import { normalName } from './wire/names.js';
import type { Upstream } from './upstream/upstream.js';

/** A domain's upstreams, or LOCAL: answered here (NXDOMAIN), never forwarded. */
export const LOCAL = 'local' as const;
export type Route = readonly Upstream[] | typeof LOCAL;

/** A rule's domain as the user wrote it, in the one form of a name (wire/names.ts). */
export function normaliseDomain(d: string): string {
  return normalName(d.trim());
}

/** One wire label as rule text: ASCII letters folded, a dot or backslash inside it escaped (so it can never match a rule's label boundary). */
function labelText(buf: Buffer, start: number, end: number): string {
  let out = '';
  for (let i = start; i < end; i++) {
    let c = buf[i]!;
    if (c >= 0x41 && c <= 0x5a) c |= 0x20;
    out += c === 0x2e || c === 0x5c ? '\\' + String.fromCharCode(c) : String.fromCharCode(c);
  }
  return out;
}

export class Router {
  private all: readonly Upstream[] = [];
  private rules = new Map<string, Route>();

  setUpstreams(list: readonly Upstream[], rules: Map<string, Route> = new Map()): void {
    this.all = list;
    this.rules = rules;
  }

  /** Every upstream in use, default set first, each once. */
  get upstreams(): readonly Upstream[] {
    const out = [...this.all];
    for (const r of this.rules.values()) if (r !== LOCAL) for (const u of r) if (!out.includes(u)) out.push(u);
    return out;
  }

  /** The route for the question name of `query` (wire form at offset 12). */
  select(query: Buffer): Route {
    if (this.rules.size === 0) return this.all;
    // Suffixes from the whole name down to the last label: the longest rule wins.
    const labels: string[] = [];
    let off = HEADER_LEN;
    while (off < query.length && query[off]! > 0) {
      const len = query[off]!;
      labels.push(labelText(query, off + 1, off + 1 + len));
      off += len + 1;
    }
    for (let i = 0; i < labels.length; i++) {
      const hit = this.rules.get(labels.slice(i).join('.'));
      if (hit !== undefined) return hit;
    }
    return this.all;
  }
}
