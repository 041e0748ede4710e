// What an upstream is, as the user names it: the transport, the address,
// the TLS name and the label in logs and metrics. Parsing only: nothing here
// loads TLS or HTTP/2, so config/ and the CLI can read a flag without them.
import { parseEndpoint, type Endpoint } from '../net/address.js';

export type Transport = 'udp' | 'tcp' | 'tls' | 'https';

export interface UpstreamSpec {
  endpoint: Endpoint;
  transport: Transport;
  /** tls: the name the server's certificate must carry; null: its IP address. */
  tlsName: string | null;
  /** The label in logs and metrics: ADDR:PORT for UDP, with the scheme for tcp:// and tls://. */
  label: string;
  /** https: the request path (default /dns-query). */
  path?: string;
  /** https://HOST with HOST a name: resolved through the bootstrap; `endpoint.host` is empty until then. */
  hostName?: string;
}

const NAME_RE = /^[a-z0-9*]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/;
const HOST_RE = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/;

/** `https://[NAME@]ADDR[:PORT][/PATH]` or `https://HOST[:PORT][/PATH]` (HOST a name the bootstrap resolves). */
function parseHttps(spec: string, rest: string): UpstreamSpec {
  let path = '/dns-query';
  const slash = rest.indexOf('/');
  if (slash >= 0) {
    path = rest.slice(slash);
    rest = rest.slice(0, slash);
    if (!/^\/[A-Za-z0-9\-._~!$&'()*+,;=:@%/]*$/.test(path)) throw new Error(`bad DoH path '${path}' in '${spec}'`);
  }
  let tlsName: string | null = null;
  const at = rest.lastIndexOf('@');
  if (at >= 0) {
    tlsName = rest.slice(0, at).toLowerCase().replace(/\.$/, '');
    if (!NAME_RE.test(tlsName)) throw new Error(`bad TLS server name '${rest.slice(0, at)}' in '${spec}'`);
    rest = rest.slice(at + 1);
  }
  let endpoint: Endpoint;
  let hostName: string | undefined;
  try {
    endpoint = parseEndpoint(rest, 443);
  } catch (err) {
    const m = /^([^:#[\]]+)(?:[:#](\d{1,5}))?$/.exec(rest);
    const host = m?.[1]!.toLowerCase().replace(/\.$/, '');
    if (!m || !HOST_RE.test(host!) || /^[\d.]+$/.test(host!)) throw err;
    if (tlsName !== null) throw new Error(`'${spec}': NAME@ needs an IP address after it, not the name '${m[1]}'`);
    const port = m[2] === undefined ? 443 : Number(m[2]);
    if (port < 1 || port > 65535) throw new Error(`port out of range in '${spec}'`);
    hostName = tlsName = host!;
    endpoint = { host: '', port, family: 4, label: `${host}:${port}` };
  }
  return { endpoint, transport: 'https', tlsName, path, ...(hostName ? { hostName } : {}), label: `https://${tlsName && !hostName ? `${tlsName}@` : ''}${endpoint.label}${path}` };
}

/**
 * Parses `ADDR[:PORT]`, `ADDR#PORT`, `[V6]:PORT`, optionally prefixed
 * `udp://` or `tcp://`; `tls://[NAME@]ADDR[:PORT]` (port 853 by default);
 * and `https://[NAME@]HOST[:PORT][/PATH]` (443, /dns-query).
 */
export function parseUpstream(spec: string): UpstreamSpec {
  let transport: Transport = 'udp';
  let rest = spec.trim();
  const scheme = /^([a-z]+):\/\//.exec(rest);
  if (scheme) {
    if (scheme[1] !== 'udp' && scheme[1] !== 'tcp' && scheme[1] !== 'tls' && scheme[1] !== 'https') {
      throw new Error(`unknown upstream scheme '${scheme[1]}' in '${spec}' (udp://, tcp://, tls:// or https://)`);
    }
    transport = scheme[1];
    rest = rest.slice(scheme[0].length);
    if (transport === 'https') return parseHttps(spec, rest);
  }
  if (transport !== 'tls') {
    const endpoint = parseEndpoint(rest, 53);
    // tcp:// keeps its scheme in the label: the same address over UDP is another upstream, with its own series.
    return { endpoint, transport, tlsName: null, label: transport === 'tcp' ? `tcp://${endpoint.label}` : endpoint.label };
  }
  let tlsName: string | null = null;
  const at = rest.lastIndexOf('@');
  if (at >= 0) {
    tlsName = rest.slice(0, at).toLowerCase().replace(/\.$/, '');
    if (!NAME_RE.test(tlsName)) {
      throw new Error(`bad TLS server name '${rest.slice(0, at)}' in '${spec}'`);
    }
    rest = rest.slice(at + 1);
  }
  const endpoint = parseEndpoint(rest, 853);
  return { endpoint, transport, tlsName, label: `tls://${tlsName ? `${tlsName}@` : ''}${endpoint.label}` };
}
