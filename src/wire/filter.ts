// Address rules on upstream answers, read straight from the reply bytes:
// --ignore-address (the reply counts as no reply), --bogus-nxdomain (the
// reply becomes NXDOMAIN), --stop-dns-rebind (private addresses for public
// names are refused). Only the A/AAAA records of the answer section count.
// Built once; check() allocates nothing.
import { HEADER_LEN, Rcode, Type } from './constants.js';
import { sameName, skipName, type Scan } from './message.js';
import { copyBytes, put16, u16 } from './bytes.js';
import { textToWire } from './build.js';

export const ADDR_OK = 0;
export const ADDR_IGNORE = 1;
export const ADDR_BOGUS = 2;
export const ADDR_REBIND = 3;
export type AddressVerdict = typeof ADDR_OK | typeof ADDR_IGNORE | typeof ADDR_BOGUS | typeof ADDR_REBIND;

export interface AddressRuleOptions {
  ignore: readonly Cidr[];
  bogus: readonly Cidr[];
  stopRebind: boolean;
  rebindLocalhostOk: boolean;
  /** Names (lower case, no trailing dot) whose answers may carry private addresses. */
  rebindDomainOk: readonly string[];
}

interface Prefix {
  bytes: Uint8Array;
  bits: number;
}

/** An address range (net/address.ts's Cidr has this shape): wire/ imports nothing of raced. */
interface Cidr {
  readonly family: 4 | 6;
  readonly bytes: Uint8Array;
  readonly bits: number;
}

function prefixes(list: readonly Cidr[], family: 4 | 6): Prefix[] {
  return list.filter((c) => c.family === family).map((c) => ({ bytes: c.bytes, bits: c.bits }));
}

function inPrefix(buf: Buffer, at: number, p: Prefix): boolean {
  let bits = p.bits;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((buf[at + i]! & mask) !== (p.bytes[i]! & mask)) return false;
  }
  return true;
}

function inAny(buf: Buffer, at: number, list: readonly Prefix[]): boolean {
  for (let i = 0; i < list.length; i++) if (inPrefix(buf, at, list[i]!)) return true;
  return false;
}

/**
 * Addresses a public name has no business resolving to: "this network"
 * 0/8, 10/8, loopback 127/8, link-local 169.254/16, 172.16/12, 192.168/16
 * (RFC 1122, 1918, 3927). Loopback passes with `localhostOk`.
 */
function privateV4(buf: Buffer, at: number, localhostOk: boolean): boolean {
  const a = buf[at]!;
  const b = buf[at + 1]!;
  if (a === 127) return !localhostOk;
  return a === 0 || a === 10 || (a === 169 && b === 254) || (a === 172 && (b & 0xf0) === 16) || (a === 192 && b === 168);
}

/** ::, ::1 (unless `localhostOk`), fe80::/10 link-local, fc00::/7 unique local, and ::ffff:a.b.c.d of a private IPv4. */
function privateV6(buf: Buffer, at: number, localhostOk: boolean): boolean {
  const a = buf[at]!;
  if ((a & 0xfe) === 0xfc) return true;
  if (a === 0xfe && (buf[at + 1]! & 0xc0) === 0x80) return true;
  for (let i = 0; i < 10; i++) if (buf[at + i] !== 0) return false;
  const w5 = u16(buf, at + 10);
  if (w5 === 0xffff) return privateV4(buf, at + 12, localhostOk);
  if (w5 !== 0 || u16(buf, at + 12) !== 0) return false;
  const last = u16(buf, at + 14);
  return last === 0 || (last === 1 && !localhostOk);
}

export class AddressRules {
  private readonly ignore4: Prefix[];
  private readonly ignore6: Prefix[];
  private readonly bogus4: Prefix[];
  private readonly bogus6: Prefix[];
  private readonly okDomains: Buffer[];

  constructor(private readonly o: AddressRuleOptions) {
    this.ignore4 = prefixes(o.ignore, 4);
    this.ignore6 = prefixes(o.ignore, 6);
    this.bogus4 = prefixes(o.bogus, 4);
    this.bogus6 = prefixes(o.bogus, 6);
    // Already lower-cased, no trailing dot (config/options.ts).
    this.okDomains = o.rebindDomainOk.map(textToWire);
  }

  /** Nothing to check: the race need not call check() at all. */
  static from(o: AddressRuleOptions): AddressRules | null {
    return o.ignore.length === 0 && o.bogus.length === 0 && !o.stopRebind ? null : new AddressRules(o);
  }

  /** The verdict on a valid NOERROR reply: ignore wins over bogus, bogus over rebind. */
  check(reply: Buffer, scan: Scan): AddressVerdict {
    let verdict: AddressVerdict = ADDR_OK;
    let off = scan.qEnd;
    for (let i = 0; i < scan.ancount; i++) {
      off = skipName(reply, off, true);
      if (off < 0) return ADDR_OK;
      const type = u16(reply, off);
      const rdlen = u16(reply, off + 8);
      const rdata = off + 10;
      off = rdata + rdlen;
      let v4: boolean;
      if (type === Type.A && rdlen === 4) v4 = true;
      else if (type === Type.AAAA && rdlen === 16) v4 = false;
      else continue;
      if (inAny(reply, rdata, v4 ? this.ignore4 : this.ignore6)) return ADDR_IGNORE;
      if (verdict === ADDR_BOGUS) continue;
      if (inAny(reply, rdata, v4 ? this.bogus4 : this.bogus6)) verdict = ADDR_BOGUS;
      else if (verdict === ADDR_OK && this.o.stopRebind) {
        const lo = this.o.rebindLocalhostOk;
        if (v4 ? privateV4(reply, rdata, lo) : privateV6(reply, rdata, lo)) verdict = ADDR_REBIND;
      }
    }
    if (verdict === ADDR_REBIND && this.domainOk(reply)) return ADDR_OK;
    return verdict;
  }

  /** The question name is one of --rebind-domain-ok's domains or under one. */
  private domainOk(reply: Buffer): boolean {
    const end = skipName(reply, HEADER_LEN, false);
    if (end < 0) return false;
    for (let off = HEADER_LEN; off < end; off += reply[off]! + 1) {
      const rest = end - off;
      for (const d of this.okDomains) if (d.length === rest && sameName(reply, off, d, 0, rest)) return true;
    }
    return false;
  }
}

/**
 * --bogus-nxdomain: the reply as NXDOMAIN — its header and question, no
 * records but its OPT (so the upstream's own EDNS options still reach the client).
 */
export function asNxdomain(reply: Buffer, scan: Scan): Buffer {
  const optLen = scan.opt >= 0 ? scan.optEnd - scan.opt : 0;
  const out = Buffer.allocUnsafe(scan.qEnd + optLen);
  copyBytes(reply, out, 0, 0, scan.qEnd);
  out[3] = (out[3]! & 0xf0) | Rcode.NXDOMAIN;
  put16(out, 6, 0);
  put16(out, 8, 0);
  put16(out, 10, optLen > 0 ? 1 : 0);
  if (optLen > 0) copyBytes(reply, out, scan.qEnd, scan.opt, scan.optEnd);
  return out;
}
