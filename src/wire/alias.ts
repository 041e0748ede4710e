// Messages for search domains, by bytes: the internal query raced asks
// itself for one qualified name, and the reply to the client that says
// "the name you asked is an alias of the qualified one" (a CNAME in front of
// the qualified name's records). Nothing here throws on a malformed reply:
// it returns null and the caller answers SERVFAIL.
import { CLASS_IN, FLAG_AA, FLAG_AD, FLAG_CD, FLAG_RD, HEADER_LEN, Type } from './constants.js';
import { put16, put32, u16 } from './bytes.js';
import { sameName, type ParsedQuery, type Scan } from './message.js';
import { buildQuery } from './build.js';

const MAX_NAME = 255;

/** A query for `name` (wire form), the client's RD/CD, and an OPT with its DO bit when it used EDNS. */
export function internalQuery(name: Buffer, qtype: number, pq: ParsedQuery, id: number): Buffer {
  // UDP size 65535: the internal client is not size-limited.
  return buildQuery(name, qtype, id, (pq.rd ? FLAG_RD : 0) | (pq.cd ? FLAG_CD : 0), pq.edns ? { udpSize: 65535, do: pq.ednsDo } : null);
}

/**
 * The name at `off` with every compression pointer followed, in wire form,
 * and the offset just past it where it sits; null when malformed. A pointer
 * must point before the start of everything read so far, so a walk ends.
 */
export function expandName(buf: Buffer, off: number, end: number): { name: Buffer; next: number } | null {
  const bytes: number[] = [];
  let next = -1;
  let pos = off;
  let floor = off;
  for (;;) {
    if (pos >= (next < 0 ? end : buf.length)) return null;
    const len = buf[pos]!;
    if (len === 0) {
      bytes.push(0);
      if (next < 0) next = pos + 1;
      return { name: Buffer.from(bytes), next };
    }
    if ((len & 0xc0) === 0xc0) {
      if (pos + 1 >= (next < 0 ? end : buf.length)) return null;
      const target = ((len & 0x3f) << 8) | buf[pos + 1]!;
      if (next < 0) next = pos + 2;
      if (target >= floor || target < HEADER_LEN) return null;
      floor = target;
      pos = target;
      continue;
    }
    if (len & 0xc0) return null;
    if (pos + 1 + len > (next < 0 ? end : buf.length) || bytes.length + len + 2 > MAX_NAME) return null;
    for (let i = pos; i <= pos + len; i++) bytes.push(buf[i]!);
    pos += len + 1;
  }
}

/** Where the domain names sit in the RDATA of the types that may carry compressed ones (RFC 3597 §4, and SRV seen in the wild). */
function rdataLayout(type: number): { before: number; names: number; after: number } | null {
  switch (type) {
    case 2: case 3: case 4: case 5: case 7: case 8: case 9: case 12: case 39: // NS MD MF CNAME MB MG MR PTR DNAME
      return { before: 0, names: 1, after: 0 };
    case 14: case 17: // MINFO RP
      return { before: 0, names: 2, after: 0 };
    case 15: case 18: case 21: case 36: // MX AFSDB RT KX
      return { before: 2, names: 1, after: 0 };
    case 6: // SOA
      return { before: 0, names: 2, after: 20 };
    case 33: // SRV
      return { before: 6, names: 1, after: 0 };
    default:
      return null;
  }
}

/**
 * One record of `reply` at `off`, rewritten without compression pointers
 * but one: an owner equal to `target` becomes a pointer to `targetAt` (the
 * CNAME's RDATA), so the records stay small and --round-robin can rotate
 * them. Null when malformed.
 */
function expandRecord(reply: Buffer, off: number, end: number, target: Buffer, targetAt: number): { bytes: Buffer; next: number } | null {
  const owner = expandName(reply, off, end);
  if (owner === null || owner.next + 10 > end) return null;
  const ownerBytes = owner.name.length === target.length && sameName(owner.name, 0, target, 0, target.length) ? Buffer.from([0xc0 | (targetAt >> 8), targetAt & 0xff]) : owner.name;
  const fixed = owner.next;
  const type = u16(reply, fixed);
  const rdlen = u16(reply, fixed + 8);
  const rdStart = fixed + 10;
  const rdEnd = rdStart + rdlen;
  if (rdEnd > end) return null;
  const layout = rdataLayout(type);
  let rdata: Buffer;
  if (layout === null) {
    rdata = reply.subarray(rdStart, rdEnd);
  } else {
    const parts: Buffer[] = [];
    let pos = rdStart;
    if (pos + layout.before > rdEnd) return null;
    parts.push(reply.subarray(pos, pos + layout.before));
    pos += layout.before;
    for (let i = 0; i < layout.names; i++) {
      const n = expandName(reply, pos, rdEnd);
      if (n === null) return null;
      parts.push(n.name);
      pos = n.next;
    }
    if (pos + layout.after !== rdEnd) return null;
    parts.push(reply.subarray(pos, rdEnd));
    rdata = Buffer.concat(parts);
  }
  if (rdata.length > 65535) return null;
  const head = Buffer.alloc(10);
  reply.copy(head, 0, fixed, fixed + 8); // TYPE, CLASS, TTL
  put16(head, 8, rdata.length);
  return { bytes: Buffer.concat([ownerBytes, head, rdata]), next: rdEnd };
}

/**
 * The reply to `query` (the client's, asking for an alias) built from
 * `reply` (the answer for `target`, wire form): header and RCODE of `reply`
 * (AA and AD cleared: raced made the CNAME up), the client's question, a
 * CNAME from it to `target` with the records' smallest TTL (at most 300 s),
 * then every record of `reply`. Null when `reply` is malformed.
 */
export function aliasReply(reply: Buffer, scan: Scan, query: Buffer, pq: ParsedQuery, target: Buffer): Buffer | null {
  if (scan.qEnd < 0) return null;
  const parts: Buffer[] = [];
  const head = Buffer.alloc(HEADER_LEN);
  reply.copy(head, 0, 0, 4);
  put16(head, 2, u16(reply, 2) & ~(FLAG_AA | FLAG_AD));
  put16(head, 4, 1);
  put16(head, 6, scan.ancount + 1);
  put16(head, 8, scan.nscount);
  put16(head, 10, scan.arcount);
  parts.push(head, query.subarray(HEADER_LEN, pq.question.end));
  const cname = Buffer.alloc(12);
  put16(cname, 0, 0xc000 | HEADER_LEN);
  put16(cname, 2, Type.CNAME);
  put16(cname, 4, CLASS_IN);
  put32(cname, 6, scan.minTtl < 0 ? 0 : Math.min(scan.minTtl, 300));
  put16(cname, 10, target.length);
  parts.push(cname, target);
  const targetAt = pq.question.end + cname.length;
  let off = scan.qEnd;
  const total = scan.ancount + scan.nscount + scan.arcount;
  for (let i = 0; i < total; i++) {
    const r = expandRecord(reply, off, scan.end, target, targetAt);
    if (r === null) return null;
    parts.push(r.bytes);
    off = r.next;
  }
  return Buffer.concat(parts);
}
