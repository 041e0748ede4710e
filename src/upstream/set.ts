// The upstreams in use, by label: built from the lists the options name,
// without raced's own listen addresses (forwarding there would loop), and
// rebuilt on reload keeping every upstream whose label stays, with its
// sockets, counters and health, and closing the ones that went.
import { isLoopback, isWildcard, unmap, type Endpoint } from '../net/address.js';
import { ERROR_CODES, StartupError } from '../errors.js';
import type { Upstream, UpstreamSpec } from './upstream.js';

/** Is `up` one of raced's own listen addresses? Forwarding there would loop. */
export function isSelf(up: Endpoint, listen: readonly Endpoint[]): boolean {
  return listen.some((l) => {
    if (l.port !== up.port) return false;
    if (l.host === up.host) return true;
    return isWildcard(l.host) && (isLoopback(unmap(up.host)) || isWildcard(up.host));
  });
}

/** What the options name: the default upstreams and where they came from, and the per-domain routes (spec null: local). */
export interface UpstreamLists {
  defaults: readonly UpstreamSpec[];
  /** For messages: --server, the resolv-file, or null when none was given (--no-resolv without --server). */
  from: string | null;
  routes: readonly { domain: string; spec: UpstreamSpec | null }[];
}

/** The upstreams to use: the default set, and per domain its upstreams or null (answered locally). */
export interface UpstreamChoice {
  defaults: Upstream[];
  domains: Map<string, Upstream[] | null>;
}

export class UpstreamSet {
  private readonly byLabel = new Map<string, Upstream>();

  constructor(
    /** A new upstream for a label not in use yet. */
    private readonly make: (spec: UpstreamSpec) => Upstream,
    private readonly warn: (message: string) => void,
  ) {}

  /** Every upstream held, including any a failed update made and no route uses yet. */
  values(): IterableIterator<Upstream> {
    return this.byLabel.values();
  }

  /**
   * The upstreams for `lists`, skipping raced's own `listen` addresses.
   * Throws a StartupError when nothing is left, before anything is closed:
   * the upstreams in use stay as they were.
   */
  update(lists: UpstreamLists, listen: readonly Endpoint[]): UpstreamChoice {
    const used = new Set<Upstream>();
    const upstreamFor = (spec: UpstreamSpec, source: string): Upstream | null => {
      if (!spec.hostName && isSelf(spec.endpoint, listen)) {
        this.warn(`skipping upstream ${spec.label} from ${source}: it is raced's own listen address`);
        return null;
      }
      let u = this.byLabel.get(spec.label);
      if (u === undefined) {
        u = this.make(spec);
        this.byLabel.set(spec.label, u);
      }
      used.add(u);
      return u;
    };
    const defaults: Upstream[] = [];
    for (const spec of lists.defaults) {
      const u = upstreamFor(spec, lists.from ?? '--server');
      if (u && !defaults.includes(u)) defaults.push(u);
    }
    const domains = new Map<string, Upstream[] | null>();
    for (const r of lists.routes) {
      if (r.spec === null) {
        domains.set(r.domain, null);
        continue;
      }
      const u = upstreamFor(r.spec, `--server /${r.domain}/`);
      const have = domains.get(r.domain);
      if (u === null || have === null) continue;
      domains.set(r.domain, have && !have.includes(u) ? [...have, u] : have ?? [u]);
    }
    if (defaults.length === 0 && domains.size === 0) {
      throw new StartupError(
        ERROR_CODES.UPSTREAMS,
        lists.from === null
          ? 'no upstream servers: give --server, or drop --no-resolv'
          : `no upstream servers left from ${lists.from} (every one is raced itself or none is listed)`,
      );
    }
    for (const [label, u] of this.byLabel) {
      if (!used.has(u)) {
        u.close();
        this.byLabel.delete(label);
      }
    }
    return { defaults, domains };
  }

  close(): void {
    for (const u of this.byLabel.values()) u.close();
  }
}
