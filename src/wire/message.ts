// Reading DNS messages by hand: header, question and a structural walk of the
// records. The hot path never decodes a whole message; it only needs offsets.
import { EDNS_DO, FLAG_CD, FLAG_QR, FLAG_RD, HEADER_LEN, OPCODE_MASK, Rcode, Type } from './constants.js';
import { u16, u32 } from './bytes.js';

const MAX_NAME_WIRE = 255;

/**
 * Offset just past the name at `off`, or -1 when it is malformed.
 * Compression pointers are allowed only when `pointers` is set, and must point
 * backwards, so a walk always terminates.
 */
export function skipName(buf: Buffer, off: number, pointers: boolean): number {
  const start = off;
  let wire = 0;
  for (;;) {
    if (off >= buf.length) return -1;
    const len = buf[off]!;
    if (len === 0) return wire + 1 > MAX_NAME_WIRE ? -1 : off + 1;
    if ((len & 0xc0) === 0xc0) {
      if (!pointers || off + 1 >= buf.length) return -1;
      const target = ((len & 0x3f) << 8) | buf[off + 1]!;
      return target < start && target >= HEADER_LEN ? off + 2 : -1;
    }
    if (len & 0xc0) return -1; // 0x40/0x80 label types are obsolete or unassigned
    wire += len + 1;
    off += len + 1;
  }
}

export interface Question {
  /** Offset just past the question name (the name starts at 12). */
  nameEnd: number;
  /** Offset just past QTYPE and QCLASS. */
  end: number;
  qtype: number;
  qclass: number;
}

/** The question at offset 12 (uncompressed, as it must be), or null. */
export function readQuestion(buf: Buffer): Question | null {
  const nameEnd = skipName(buf, HEADER_LEN, false);
  if (nameEnd < 0 || nameEnd + 4 > buf.length) return null;
  return { nameEnd, end: nameEnd + 4, qtype: u16(buf, nameEnd), qclass: u16(buf, nameEnd + 2) };
}

/** What a structural walk of a whole message found. */
export interface Scan {
  /** The message starts at 0 of the buffer scanned (a ReplyLayout's start). */
  start: number;
  /** RCODE including the extended bits from OPT. */
  rcode: number;
  /** Offsets just past the question name and past the whole question; -1 without a question. */
  qNameEnd: number;
  qEnd: number;
  /** Offset of the OPT record, -1 when there is none; its end. */
  opt: number;
  optEnd: number;
  optCount: number;
  /** OPT in a section other than additional, or with a non-root owner. */
  optMisplaced: boolean;
  ednsVersion: number;
  ednsUdpSize: number;
  ednsDo: boolean;
  /** Offsets of the TTL fields of every record but OPT, when asked for. */
  ttls: number[] | null;
  /** Smallest TTL over answer+authority+additional (OPT excluded); -1 if no records. */
  minTtl: number;
  /** For negative caching (RFC 2308 §5): min(SOA TTL, SOA MINIMUM) of an authority SOA, -1 if none. */
  soaTtl: number;
  ancount: number;
  nscount: number;
  arcount: number;
  /** Offset just past the last record. */
  end: number;
}

/** A blank scan to reuse with scanMessage's `into`. */
export function newScan(): Scan {
  return {
    start: 0,
    rcode: 0,
    qNameEnd: -1,
    qEnd: -1,
    opt: -1,
    optEnd: -1,
    optCount: 0,
    optMisplaced: false,
    ednsVersion: 0,
    ednsUdpSize: 0,
    ednsDo: false,
    ttls: null,
    minTtl: -1,
    soaTtl: -1,
    ancount: 0,
    nscount: 0,
    arcount: 0,
    end: 0,
  };
}

/**
 * Walks every section and checks that the counts match the records.
 * Returns null for anything malformed. Trailing bytes are reported through
 * `end` so the caller decides (replies: reject; queries: ignore).
 * `into`: fill this scan instead of a new one (a reply that is only checked and counted).
 */
export function scanMessage(buf: Buffer, wantTtls: boolean, into: Scan | null = null): Scan | null {
  if (buf.length < HEADER_LEN) return null;
  const qdcount = u16(buf, 4);
  const ancount = u16(buf, 6);
  const nscount = u16(buf, 8);
  const arcount = u16(buf, 10);
  if (qdcount > 1) return null;
  let qNameEnd = -1;
  let off = HEADER_LEN;
  if (qdcount === 1) {
    qNameEnd = skipName(buf, HEADER_LEN, false);
    if (qNameEnd < 0 || qNameEnd + 4 > buf.length) return null;
    off = qNameEnd + 4;
  }
  const scan = into ?? newScan();
  scan.start = 0;
  scan.rcode = buf[3]! & 0x0f;
  scan.qNameEnd = qNameEnd;
  scan.qEnd = qNameEnd < 0 ? -1 : off;
  scan.opt = -1;
  scan.optEnd = -1;
  scan.optCount = 0;
  scan.optMisplaced = false;
  scan.ednsVersion = 0;
  scan.ednsUdpSize = 0;
  scan.ednsDo = false;
  scan.ttls = wantTtls ? [] : null;
  scan.minTtl = -1;
  scan.soaTtl = -1;
  scan.ancount = ancount;
  scan.nscount = nscount;
  scan.arcount = arcount;
  scan.end = 0;
  const total = ancount + nscount + arcount;
  for (let i = 0; i < total; i++) {
    const start = off;
    off = skipName(buf, off, true);
    if (off < 0 || off + 10 > buf.length) return null;
    const type = u16(buf, off);
    const ttlOff = off + 4;
    const rdlen = u16(buf, off + 8);
    const rdata = off + 10;
    off = rdata + rdlen;
    if (off > buf.length) return null;
    if (type === Type.OPT) {
      scan.optCount++;
      if (i < ancount + nscount || buf[start] !== 0) scan.optMisplaced = true;
      if (scan.opt < 0) {
        scan.opt = start;
        scan.optEnd = off;
        scan.ednsUdpSize = u16(buf, start + 3);
        scan.rcode |= buf[ttlOff]! << 4;
        scan.ednsVersion = buf[ttlOff + 1]!;
        scan.ednsDo = (u16(buf, ttlOff + 2) & EDNS_DO) !== 0;
      }
      continue;
    }
    const ttl = u32(buf, ttlOff);
    if (scan.ttls) scan.ttls.push(ttlOff);
    if (scan.minTtl < 0 || ttl < scan.minTtl) scan.minTtl = ttl;
    if (type === Type.SOA && i >= ancount && i < ancount + nscount && rdlen >= 20) {
      const minimum = u32(buf, off - 4);
      const soa = Math.min(ttl, minimum);
      if (scan.soaTtl < 0 || soa < scan.soaTtl) scan.soaTtl = soa;
    }
  }
  scan.end = off;
  return scan;
}

/** A client's query after the checks of the pipeline. */
export interface ParsedQuery {
  id: number;
  rd: boolean;
  cd: boolean;
  question: Question;
  /** The query carried an OPT record. */
  edns: boolean;
  ednsDo: boolean;
  ednsUdpSize: number;
}

export type QueryVerdict =
  | { ok: true; query: ParsedQuery }
  /** rcode null: drop silently (too short to answer, or a reply looping back). */
  | { ok: false; rcode: number | null; question: Question | null; edns: boolean; reason: string };

/** The client-side checks of RFC 1035 / RFC 6891 on a raw query. */
export function checkQuery(buf: Buffer): QueryVerdict {
  if (buf.length < HEADER_LEN) return { ok: false, rcode: null, question: null, edns: false, reason: 'short' };
  const flags = u16(buf, 2);
  if (flags & FLAG_QR) return { ok: false, rcode: null, question: null, edns: false, reason: 'qr' };
  const opcode = (flags & OPCODE_MASK) >> 11;
  const qdcount = u16(buf, 4);
  const question = qdcount === 1 ? readQuestion(buf) : null;
  if (opcode !== 0) return { ok: false, rcode: Rcode.NOTIMP, question, edns: false, reason: 'opcode' };
  if (question === null) return { ok: false, rcode: Rcode.FORMERR, question: null, edns: false, reason: 'question' };
  const rd = (flags & FLAG_RD) !== 0;
  const cd = (flags & FLAG_CD) !== 0;
  const id = u16(buf, 0);
  // The common shapes, read without a full walk: no records at all, or one
  // root-owned OPT right after the question (dig, glibc, dnsperf).
  const counts = u32(buf, 6) * 65536 + u16(buf, 10); // AN, NS, AR
  if (counts === 0) {
    return { ok: true, query: { id, rd, cd, question, edns: false, ednsDo: false, ednsUdpSize: 0 } };
  }
  const o = question.end;
  if (counts === 1 && o + 11 <= buf.length && buf[o] === 0 && u16(buf, o + 1) === Type.OPT && o + 11 + u16(buf, o + 9) <= buf.length) {
    if (buf[o + 6] !== 0) return { ok: false, rcode: Rcode.BADVERS, question, edns: true, reason: 'badvers' };
    const ednsDo = (u16(buf, o + 7) & EDNS_DO) !== 0;
    return { ok: true, query: { id, rd, cd, question, edns: true, ednsDo, ednsUdpSize: u16(buf, o + 3) } };
  }
  const scan = scanMessage(buf, false);
  if (scan === null) return { ok: false, rcode: Rcode.FORMERR, question, edns: false, reason: 'records' };
  if (scan.optCount > 1 || scan.optMisplaced) {
    return { ok: false, rcode: Rcode.FORMERR, question, edns: false, reason: 'opt' };
  }
  const edns = scan.opt >= 0;
  if (edns && scan.ednsVersion > 0) return { ok: false, rcode: Rcode.BADVERS, question, edns, reason: 'badvers' };
  return {
    ok: true,
    query: {
      id,
      rd,
      cd,
      question,
      edns,
      ednsDo: scan.ednsDo,
      ednsUdpSize: scan.ednsUdpSize,
    },
  };
}

/** Case-insensitive (ASCII only, RFC 4343) comparison of two wire names of the same offsets. */
export function sameName(a: Buffer, aStart: number, b: Buffer, bStart: number, len: number): boolean {
  for (let i = 0; i < len; i++) {
    let x = a[aStart + i]!;
    let y = b[bStart + i]!;
    if (x >= 0x41 && x <= 0x5a) x |= 0x20;
    if (y >= 0x41 && y <= 0x5a) y |= 0x20;
    if (x !== y) return false;
  }
  return true;
}

const TYPE_NAMES: Record<number, string> = {
  1: 'A', 2: 'NS', 5: 'CNAME', 6: 'SOA', 12: 'PTR', 15: 'MX', 16: 'TXT', 28: 'AAAA', 33: 'SRV',
  41: 'OPT', 43: 'DS', 46: 'RRSIG', 48: 'DNSKEY', 64: 'SVCB', 65: 'HTTPS', 255: 'ANY',
};

export function typeName(t: number): string {
  return TYPE_NAMES[t] ?? `TYPE${t}`;
}

/** The question name as text for logs (slow path): dots escaped, odd bytes as \DDD. */
export function nameToText(buf: Buffer): string {
  const labels: string[] = [];
  let off = HEADER_LEN;
  while (off < buf.length && buf[off]! > 0 && buf[off]! < 64) {
    const len = buf[off]!;
    let label = '';
    for (let i = off + 1; i <= off + len && i < buf.length; i++) {
      const c = buf[i]!;
      if (c === 0x2e || c === 0x5c) label += '\\' + String.fromCharCode(c);
      else if (c > 0x20 && c < 0x7f) label += String.fromCharCode(c);
      else label += '\\' + String(c).padStart(3, '0');
    }
    labels.push(label);
    off += len + 1;
  }
  return labels.length ? labels.join('.') + '.' : '.';
}
