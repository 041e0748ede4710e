// What an upstream is, as the user names it: the transport, the address,
// the TLS name and the label in logs and metrics. Parsing only: nothing here
// loads TLS or HTTP/2, so config/ and the CLI can read a flag without them.
import { endpointLabel, parseEndpoint, type Endpoint } from '../net/address.js';
import { normalName } from '../wire/names.js';

export type Transport = 'udp' | 'tcp' | 'tls' | 'https';

export interface UpstreamSpec {
  endpoint: Endpoint;
  transport: Transport;
  /** tls: the name the server's certificate must carry; null: its IP address. */
  tlsName: string | null;
  /** The label in logs and metrics: upstreamLabel() of the rest. */
  label: string;
  /** https: the request path (default /dns-query). */
  path?: string;
  /** https://HOST with HOST a name: resolved through the bootstrap; `endpoint.host` is empty until then. */
  hostName?: string;
}

/**
 * The one label of an upstream in logs, metrics and `raced status`: ADDR:PORT
 * ([V6]:PORT) for UDP; with the scheme for the others, since the same address
 * over another transport is another upstream with its own series; tls:// and
 * https:// with NAME@ when a TLS name was given, https:// with its path.
 */
export function upstreamLabel(s: Omit<UpstreamSpec, 'label'>): string {
  const ep = s.endpoint.label;
  switch (s.transport) {
    case 'udp':
      return ep;
    case 'tcp':
      return `tcp://${ep}`;
    case 'tls':
      return `tls://${s.tlsName !== null ? `${s.tlsName}@` : ''}${ep}`;
    case 'https':
      // https://HOST: the host name is the TLS name and already the label's host.
      return `https://${s.tlsName !== null && !s.hostName ? `${s.tlsName}@` : ''}${ep}${s.path ?? '/dns-query'}`;
  }
}

/** The spec with its label. */
function withLabel(s: Omit<UpstreamSpec, 'label'>): UpstreamSpec {
  return { ...s, label: upstreamLabel(s) };
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
    tlsName = normalName(rest.slice(0, at));
    if (!NAME_RE.test(tlsName)) throw new Error(`bad TLS server name '${rest.slice(0, at)}' in '${spec}'`);
    rest = rest.slice(at + 1);
  }
  let endpoint: Endpoint;
  let hostName: string | undefined;
  try {
    endpoint = parseEndpoint(rest, 443);
  } catch (err) {
    const m = /^([^:#[\]]+)(?:[:#](\d{1,5}))?$/.exec(rest);
    const host = m && normalName(m[1]!);
    if (!m || !HOST_RE.test(host!) || /^[\d.]+$/.test(host!)) throw err;
    if (tlsName !== null) throw new Error(`'${spec}': NAME@ needs an IP address after it, not the name '${m[1]}'`);
    const port = m[2] === undefined ? 443 : Number(m[2]);
    if (port < 1 || port > 65535) throw new Error(`port out of range in '${spec}'`);
    hostName = tlsName = host!;
    endpoint = { host: '', port, family: 4, label: endpointLabel(host!, port) };
  }
  return withLabel({ endpoint, transport: 'https', tlsName, path, ...(hostName ? { hostName } : {}) });
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
    return withLabel({ endpoint: parseEndpoint(rest, 53), transport, tlsName: null });
  }
  let tlsName: string | null = null;
  const at = rest.lastIndexOf('@');
  if (at >= 0) {
    tlsName = normalName(rest.slice(0, at));
    if (!NAME_RE.test(tlsName)) {
      throw new Error(`bad TLS server name '${rest.slice(0, at)}' in '${spec}'`);
    }
    rest = rest.slice(at + 1);
  }
  return withLabel({ endpoint: parseEndpoint(rest, 853), transport, tlsName });
}
