// The one definition of an address raced talks to or listens on, and of the
// client allow-list. Accepts ADDR, ADDR:PORT, ADDR#PORT (dnsmasq), [V6]:PORT.
import { isIP } from 'node:net';
import { readFileSync } from 'node:fs';

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

/** A host as it goes before `:PORT` (in a label, a URL authority, a flag value): IPv6 in brackets. */
export function hostPart(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

/** HOST:PORT, [V6]:PORT: the one label of an address in logs and metrics, and what parseEndpoint reads back. */
export function endpointLabel(host: string, port: number): string {
  return `${hostPart(host)}:${port}`;
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

/**
 * 127.0.0.0/8 or ::1. An IPv4-mapped address (::ffff:127.0.0.1) is not
 * loopback here: a client's address reaches this check already unmapped by
 * the listener when, and only when, the kernel could have made it (clientAddress).
 */
export function isLoopback(host: string): boolean {
  return host.startsWith('127.') || host === '::1';
}

const MAPPED = /^::ffff:(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})$/i;

/** ::ffff:a.b.c.d → a.b.c.d; anything else as it is. */
export function unmap(host: string): string {
  const m = MAPPED.exec(host);
  return m ? m[1]! : host;
}

/**
 * The address a query is checked and logged under. Only a dual-stack IPv6
 * socket receives IPv4 traffic, and the kernel then writes its source as
 * ::ffff:a.b.c.d: there, and only there, that is the IPv4 client. On an
 * IPv6-only socket the same source can only come in a forged IPv6 packet
 * (RFC 4291 §2.5.5.2: mapped addresses are not used on the wire), so it
 * stays the IPv6 address it is and matches neither loopback nor an IPv4 --allow.
 */
export function clientAddress(source: string, dualStack: boolean): string {
  return dualStack ? unmap(source) : source;
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

/**
 * A socket systemd passed: raced cannot ask it for IPV6_V6ONLY (Node has no
 * getsockopt), so an IPv6 socket on the wildcard or on a mapped address is
 * taken as dual-stack unless the host's default is IPv6-only
 * (net.ipv6.bindv6only=1), which systemd's BindIPv6Only=default follows.
 * A unit with BindIPv6Only=ipv6-only on a bindv6only=0 host is the one case
 * this gets wrong: use a specific address there, or bindv6only=1.
 */
export function adoptedDualStack(family: string | number, address: string, bindv6only = readBindV6Only()): boolean {
  if (family !== 'IPv6' && family !== 6) return false;
  return !bindv6only && (address === '::' || MAPPED.test(address));
}

function readBindV6Only(): boolean {
  try {
    return readFileSync('/proc/sys/net/ipv6/bindv6only', 'utf8').trim() === '1';
  } catch {
    return false;
  }
}

/** A mapped address (::ffff:a.b.c.d) is an IPv6 address here: see clientAddress. */
export function ipBytes(host: string): { family: 4 | 6; bytes: Uint8Array } | null {
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

/**
 * Not net.BlockList: BlockList matches ::ffff:a.b.c.d against IPv4 rules,
 * which would let a forged mapped source on an IPv6-only socket pass an IPv4
 * --allow (see clientAddress). Speed was no reason either way: 5 rules, 5
 * addresses, 300k checks each, on the shared 2-core machine (load ~8):
 * 16-20 us/check here, 14-22 us/check with BlockList + isIP.
 */
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
