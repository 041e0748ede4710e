// Which upstreams the options name: --server's, else the resolv-file's
// nameservers (read again on every reload), and the --server /domain/ routes.
import { ERROR_CODES, StartupError } from '../errors.js';
import type { UpstreamLists } from '../upstream/set.js';
import type { Options } from './options.js';
import { readResolvUpstreams } from './resolv.js';

export function upstreamLists(opts: Options, warn: (message: string) => void): UpstreamLists {
  if (opts.servers.length > 0 || opts.noResolv) {
    return { defaults: opts.servers, from: opts.servers.length === 0 ? null : opts.serversFrom, routes: opts.routes };
  }
  try {
    return { defaults: readResolvUpstreams(opts.resolvFile, warn), from: opts.resolvFile, routes: opts.routes };
  } catch (err) {
    throw new StartupError(ERROR_CODES.UPSTREAMS, `cannot read --resolv-file ${opts.resolvFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}
