// The one definition of an address raced talks to or listens on, and of the
// client allow-list. Accepts ADDR, ADDR:PORT, ADDR#PORT (dnsmasq), [V6]:PORT.
import { isIP } from 'node:net';

export interface Endpoint {
  host: string;
  port: number;
  family: 4 | 6;
  /** host:port, or [host]:port for IPv6: the label used in logs and metrics. */
  label: string;
}

export class AddressError extends Error {
  override name = 'AddressError';
}

export function endpointLabel(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

function parsePort(text: string, spec: string, min: number): number {
  if (!/^\d{1,5}$/.test(text)) throw new AddressError(`bad port in '${spec}'`);
  const port = Number(text);
  if (port < min || port > 65535) throw new AddressError(`port out of range in '${spec}'`);
  return port;
}

/** `anyPort`: port 0 (a free port chosen at bind time) is allowed, for listen addresses. */
export function parseEndpoint(spec: string, defaultPort: number, anyPort = false): Endpoint {
  const min = anyPort ? 0 : 1;
  const s = spec.trim();
  let host: string;
  let port = defaultPort;
  const bracket = /^\[([^\]]+)\](?:[:#](.*))?$/.exec(s);
  if (bracket) {
    host = bracket[1]!;
    if (bracket[2] !== undefined) port = parsePort(bracket[2], spec, min);
  } else if (s.includes('#')) {
    const i = s.lastIndexOf('#');
    host = s.slice(0, i);
    port = parsePort(s.slice(i + 1), spec, min);
  } else if (isIP(s) === 6) {
    host = s; // bare IPv6 without a port
  } else if (s.includes(':')) {
    const i = s.lastIndexOf(':');
    host = s.slice(0, i);
    port = parsePort(s.slice(i + 1), spec, min);
  } else {
    host = s;
  }
  // Zone ids (fe80::1%eth0) are accepted as Node accepts them.
  const family = isIP(host);
  if (family === 0) throw new AddressError(`not an IP address: '${spec}'`);
  return { host, port, family: family as 4 | 6, label: endpointLabel(host, port) };
}

export function isLoopback(host: string): boolean {
  if (host.startsWith('::ffff:')) host = host.slice(7);
  return host.startsWith('127.') || host === '::1';
}

export function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::';
}

// --- CIDR allow-list -------------------------------------------------------

export interface Cidr {
  family: 4 | 6;
  bytes: Uint8Array;
  bits: number;
  text: string;
}

export function ipBytes(host: string): { family: 4 | 6; bytes: Uint8Array } | null {
  if (host.startsWith('::ffff:') && isIP(host.slice(7)) === 4) host = host.slice(7);
  const fam = isIP(host);
  if (fam === 4) return { family: 4, bytes: Uint8Array.from(host.split('.').map(Number)) };
  if (fam !== 6) return null;
  const zone = host.indexOf('%');
  if (zone >= 0) host = host.slice(0, zone);
  let groups: string[];
  const dbl = host.indexOf('::');
  const tail = (part: string): string[] => {
    if (part === '') return [];
    const g = part.split(':');
    const last = g[g.length - 1]!;
    if (last.includes('.')) {
      const v4 = last.split('.').map(Number);
      g.splice(g.length - 1, 1, ((v4[0]! << 8) | v4[1]!).toString(16), ((v4[2]! << 8) | v4[3]!).toString(16));
    }
    return g;
  };
  if (dbl >= 0) {
    const head = tail(host.slice(0, dbl));
    const rest = tail(host.slice(dbl + 2));
    groups = [...head, ...Array<string>(8 - head.length - rest.length).fill('0'), ...rest];
  } else {
    groups = tail(host);
  }
  const bytes = new Uint8Array(16);
  groups.forEach((g, i) => {
    const v = parseInt(g, 16);
    bytes[i * 2] = v >> 8;
    bytes[i * 2 + 1] = v & 0xff;
  });
  return { family: 6, bytes };
}

export function parseCidr(spec: string): Cidr {
  const [addr, bitsText] = spec.trim().split('/');
  const ip = ipBytes(addr ?? '');
  if (!ip) throw new AddressError(`not an IP address or CIDR: '${spec}'`);
  const max = ip.family === 4 ? 32 : 128;
  let bits = max;
  if (bitsText !== undefined) {
    if (!/^\d{1,3}$/.test(bitsText) || Number(bitsText) > max) throw new AddressError(`bad prefix length in '${spec}'`);
    bits = Number(bitsText);
  }
  return { family: ip.family, bytes: ip.bytes, bits, text: spec.trim() };
}

export function cidrContains(cidr: Cidr, host: string): boolean {
  const ip = ipBytes(host);
  if (!ip || ip.family !== cidr.family) return false;
  let bits = cidr.bits;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((ip.bytes[i]! & mask) !== (cidr.bytes[i]! & mask)) return false;
  }
  return true;
}
