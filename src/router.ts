// Which upstreams a query may go to. Holds the current upstream set; SIGHUP
// swaps it without dropping races in flight (they keep their own list).
import type { Upstream } from './upstream/upstream.js';

export class Router {
  private all: readonly Upstream[] = [];

  setUpstreams(list: readonly Upstream[]): void {
    this.all = list;
  }

  get upstreams(): readonly Upstream[] {
    return this.all;
  }

  /** The upstreams for a query name (wire form, lower-cased). */
  select(): readonly Upstream[] {
    return this.all;
  }
}
