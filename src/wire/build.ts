// Building the few messages raced writes itself, and reshaping an upstream
// reply for one client by copy-and-patch (no decode).
import {
  CLASS_IN,
  EDNS_DO,
  FLAG_AA,
  FLAG_AD,
  FLAG_CD,
  FLAG_QR,
  FLAG_RA,
  FLAG_RD,
  FLAG_TC,
  HEADER_LEN,
  OPCODE_MASK,
  Type,
} from './constants.js';
import type { ParsedQuery, Question } from './message.js';
import { u16, u32, put16, put32, copyBytes } from './bytes.js';
import { edeOption } from './ede.js';
import { withoutDot } from './names.js';

const OPT_LEN = 11;

function writeOpt(out: Buffer, off: number, udpSize: number, extRcode: number, dnssecOk: boolean): number {
  out[off] = 0; // root owner
  put16(out, off + 1, Type.OPT);
  put16(out, off + 3, udpSize);
  out[off + 5] = extRcode;
  out[off + 6] = 0; // version
  put16(out, off + 7, dnssecOk ? EDNS_DO : 0);
  put16(out, off + 9, 0);
  return off + OPT_LEN;
}

/**
 * A reply raced makes up itself (FORMERR, NOTIMP, REFUSED, SERVFAIL, BADVERS):
 * the client's ID and opcode echoed (and RD, for QUERY), its question when it had a readable
 * one, and an OPT only when the query carried one (RFC 6891 §7). `ede`: an
 * Extended DNS Error code (RFC 8914) for that OPT, -1 for none.
 */
export function errorReply(
  query: Buffer,
  question: Question | null,
  rcode: number,
  edns: boolean,
  udpSize: number,
  ede = -1,
): Buffer {
  const qLen = question ? question.end - HEADER_LEN : 0;
  const option = edns && ede >= 0 ? edeOption(ede) : null;
  const out = Buffer.alloc(HEADER_LEN + qLen + (edns ? OPT_LEN : 0) + (option ? option.length : 0));
  out[0] = query[0] ?? 0;
  out[1] = query[1] ?? 0;
  const qflags = query.length >= 4 ? u16(query, 2) : 0;
  const opcode = qflags & OPCODE_MASK;
  // RA and RD are defined for QUERY only (RFC 1035 §4.1.1, RFC 6895 §2.2): any other opcode gets them clear.
  put16(out, 2, FLAG_QR | opcode | (opcode === 0 ? FLAG_RA | (qflags & FLAG_RD) : 0) | (rcode & 0x0f));
  if (question) {
    put16(out, 4, 1);
    copyBytes(query, out, HEADER_LEN, HEADER_LEN, question.end);
  }
  if (edns) {
    put16(out, 10, 1);
    const o = writeOpt(out, HEADER_LEN + qLen, udpSize, rcode >> 4, false);
    if (option) {
      put16(out, o - 2, option.length);
      copyBytes(option, out, o, 0, option.length);
    }
  }
  return out;
}

/**
 * The query raced sends upstream for a client query: a fresh ID, the client's
 * RD/CD/AD, the question with the name lower-cased (one canonical form per
 * cache key), and always our own clean OPT, so that clients with and without
 * EDNS can share one race and the client's own options never leak upstream.
 */
export function upstreamQuery(query: Buffer, pq: ParsedQuery, id: number, udpSize: number): Buffer {
  const qEnd = pq.question.end;
  const out = Buffer.allocUnsafe(qEnd + OPT_LEN);
  put16(out, 0, id);
  put16(out, 2, u16(query, 2) & (FLAG_RD | FLAG_CD | FLAG_AD));
  put32(out, 4, 0x00010000); // QD=1 AN=0
  put32(out, 8, 0x00000001); // NS=0 AR=1
  const nameEnd = pq.question.nameEnd;
  for (let i = HEADER_LEN; i < nameEnd; i++) {
    const c = query[i]!;
    out[i] = c >= 0x41 && c <= 0x5a ? c | 0x20 : c;
  }
  copyBytes(query, out, nameEnd, nameEnd, qEnd);
  writeOpt(out, qEnd, udpSize, 0, pq.ednsDo);
  return out;
}

/**
 * Where a reply sits in its buffer (`start`..`end`, so many cached replies
 * can share one slab) and where its OPT and TTL fields are, relative to `start`.
 */
export interface ReplyLayout {
  start: number;
  end: number;
  opt: number;
  optEnd: number;
  ttls: number[] | null;
}

/**
 * The OPT raced sends a client states raced's own UDP size (RFC 6891 §6.2.3),
 * not the upstream's: patched once into an upstream reply as it comes in, so
 * every copy shaped from it (cache hits, stale answers, UDP and TCP) agrees.
 */
export function ownOptSize(reply: Buffer, layout: ReplyLayout, udpSize: number): void {
  if (layout.opt >= 0) put16(reply, layout.start + layout.opt + 3, udpSize);
}

/**
 * One client's copy of an upstream reply: its ID, its spelling of the name
 * (0x20), its RD bit; the OPT removed if the client sent none; TTLs lowered by
 * `age` seconds (cache hits) or all set to `fixedTtl` (stale answers); TC=1 with the records dropped when it does not
 * fit `maxSize` (UDP) — the client then asks again over TCP. `inPlace`: the
 * caller owns `reply` and reads it no more, so when only the header, the name
 * and a trailing OPT change it is patched where it is instead of copied.
 */
export function shapeReply(
  reply: Buffer,
  layout: ReplyLayout,
  query: Buffer,
  pq: ParsedQuery,
  maxSize: number,
  age: number,
  fixedTtl = -1,
  inPlace = false,
): Buffer {
  const base = layout.start;
  const strip = !pq.edns && layout.opt >= 0;
  const optLen = strip ? layout.optEnd - layout.opt : 0;
  const len = layout.end - base - optLen;
  if (len > maxSize) return truncated(reply, base, query, pq, maxSize);
  // In place: only the header and the name change, or also an OPT at the very end goes (most clients' case).
  if (inPlace && base === 0 && layout.end === reply.length && age <= 0 && fixedTtl < 0 && (!strip || layout.optEnd === layout.end)) {
    patchClient(reply, query, pq);
    if (!strip) return reply;
    put16(reply, 10, u16(reply, 10) - 1);
    return reply.subarray(0, layout.opt);
  }
  const out = Buffer.allocUnsafe(len);
  if (strip) {
    copyBytes(reply, out, 0, base, base + layout.opt);
    copyBytes(reply, out, layout.opt, base + layout.optEnd, layout.end);
    put16(out, 10, u16(reply, base + 10) - 1);
  } else {
    copyBytes(reply, out, 0, base, layout.end);
  }
  patchClient(out, query, pq);
  if ((age > 0 || fixedTtl >= 0) && layout.ttls) {
    for (const at of layout.ttls) {
      const o = strip && at > layout.opt ? at - optLen : at;
      const ttl = u32(out, o);
      put32(out, o, fixedTtl >= 0 ? fixedTtl : ttl > age ? ttl - age : 0);
    }
  }
  return out;
}

function patchClient(out: Buffer, query: Buffer, pq: ParsedQuery): void {
  out[0] = query[0]!;
  out[1] = query[1]!;
  out[2] = (out[2]! & ~(FLAG_RD >> 8)) | (pq.rd ? FLAG_RD >> 8 : 0);
  copyBytes(query, out, HEADER_LEN, HEADER_LEN, pq.question.nameEnd);
}

/**
 * Header and question only, TC=1, plus an OPT when the client uses EDNS. The
 * OPT's size is raced's own limit for this client (--edns-packet-max, or
 * less if the client asked for less), never an echo of the client's.
 */
function truncated(reply: Buffer, base: number, query: Buffer, pq: ParsedQuery, maxSize: number): Buffer {
  const qEnd = pq.question.end;
  const out = Buffer.alloc(qEnd + (pq.edns ? OPT_LEN : 0));
  copyBytes(reply, out, 0, base, base + 4);
  put16(out, 2, u16(out, 2) | FLAG_TC);
  put16(out, 4, 1);
  copyBytes(query, out, HEADER_LEN, HEADER_LEN, qEnd);
  if (pq.edns) {
    put16(out, 10, 1);
    writeOpt(out, qEnd, Math.max(maxSize, 512), 0, pq.ednsDo);
  }
  patchClient(out, query, pq);
  return out;
}

/** The largest UDP reply a client can take: 512 without EDNS, else its size within [512, cap]. */
export function clientUdpLimit(pq: ParsedQuery, cap: number): number {
  if (!pq.edns) return 512;
  return Math.min(Math.max(pq.ednsUdpSize, 512), cap);
}

/**
 * A query of one question (`name` in wire form, class IN) with these header
 * flags, and an OPT (root owner, no options) when `opt` is given: the one
 * builder of the queries raced makes itself (search domains, bootstrap).
 */
export function buildQuery(name: Buffer, qtype: number, id: number, flags: number, opt: { udpSize: number; do: boolean } | null = null): Buffer {
  const qEnd = HEADER_LEN + name.length + 4;
  const out = Buffer.alloc(qEnd + (opt ? OPT_LEN : 0));
  put16(out, 0, id);
  put16(out, 2, flags);
  put16(out, 4, 1);
  copyBytes(name, out, HEADER_LEN, 0, name.length);
  put16(out, qEnd - 4, qtype);
  put16(out, qEnd - 2, CLASS_IN);
  if (opt) {
    put16(out, 10, 1);
    put16(out, qEnd + 1, Type.OPT);
    put16(out, qEnd + 3, opt.udpSize);
    put16(out, qEnd + 7, opt.do ? EDNS_DO : 0);
  }
  return out;
}

/** The largest reply a client can take over its transport: clientUdpLimit over UDP, the 16-bit length over TCP. */
export function replyLimit(pq: ParsedQuery, udp: boolean, cap: number): number {
  return udp ? clientUdpLimit(pq, cap) : 65535;
}

/** A text name (no escapes) in wire form. */
export function textToWire(name: string): Buffer {
  const labels = withoutDot(name).split('.').filter(Boolean);
  return Buffer.concat([...labels.map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, 'latin1')])), Buffer.from([0])]);
}

/**
 * An authoritative local answer (hosts files): the client's header and
 * question, one record per rdata with the question's name (a pointer to
 * offset 12), the question's type and class IN, and an OPT if the client sent one.
 */
export function localAnswer(query: Buffer, pq: ParsedQuery, rdatas: readonly Buffer[], ttl: number, udpSize: number): Buffer {
  const qEnd = pq.question.end;
  const size = qEnd + rdatas.reduce((a, r) => a + 12 + r.length, 0) + (pq.edns ? OPT_LEN : 0);
  const out = Buffer.alloc(size);
  copyBytes(query, out, 0, 0, qEnd);
  put16(out, 2, FLAG_QR | FLAG_AA | FLAG_RA | (pq.rd ? FLAG_RD : 0));
  put16(out, 4, 1);
  put16(out, 6, rdatas.length);
  put16(out, 8, 0);
  put16(out, 10, pq.edns ? 1 : 0);
  let off = qEnd;
  for (const r of rdatas) {
    put16(out, off, 0xc000 | HEADER_LEN);
    put16(out, off + 2, pq.question.qtype);
    put16(out, off + 4, 1);
    put32(out, off + 6, ttl);
    put16(out, off + 10, r.length);
    copyBytes(r, out, off + 12, 0, r.length);
    off += 12 + r.length;
  }
  if (pq.edns) writeOpt(out, off, udpSize, 0, pq.ednsDo);
  return out;
}
