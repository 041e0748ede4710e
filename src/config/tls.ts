// Settings of pooled tcp://, tls:// and https:// upstream connections from
// the options; the extra CAs are read here, once.
import { ERROR_CODES, StartupError } from '../errors.js';
import { upstreamTlsContext } from '../upstream/ca.js';
import type { StreamSettings } from '../upstream/upstream.js';
import type { Options } from './options.js';

/** An unreadable --tls-ca is a StartupError. */
export function streamSettings(o: Options): StreamSettings {
  let context: StreamSettings['context'];
  try {
    context = upstreamTlsContext(o.tlsCa);
  } catch (err) {
    throw new StartupError(ERROR_CODES.FILE, (err as Error).message);
  }
  return {
    size: o.tlsPool,
    context,
    connectTimeoutMs: o.tlsConnectTimeoutMs,
    handshakeTimeoutMs: o.tlsHandshakeTimeoutMs,
    readTimeoutMs: o.tlsReadTimeoutMs,
    idleTimeoutMs: o.tlsIdleTimeoutMs,
  };
}
