// The one definition of a valid reply to an upstream leg (RFC 5452 §9.1).
// The transport has already checked that it came from the exact address and
// port the leg was sent to.
import { FLAG_QR, HEADER_LEN, OPCODE_MASK, Rcode, Type } from './constants.js';
import { sameName, scanMessage, skipName, type Scan } from './message.js';
import { u16, u32 } from './bytes.js';

export type Mismatch = 'short' | 'qr' | 'id' | 'question' | 'malformed';

/**
 * `sent` is the query of the leg; `into`, a scan to fill instead of a new one.
 * Returns the scan of a valid reply or the reason it is not one; replies with
 * wrong ID, wrong question, QR=0, bad counts or trailing bytes are all
 * rejected here and nowhere else.
 */
export function matchReply(reply: Buffer, sent: Buffer, sentQEnd: number, wantTtls: boolean, into: Scan | null = null): Scan | Mismatch {
  if (reply.length < HEADER_LEN) return 'short';
  if (reply[0] !== sent[0] || reply[1] !== sent[1]) return 'id';
  const flags = u16(reply, 2);
  if (!(flags & FLAG_QR) || (flags & OPCODE_MASK) !== 0) return 'qr';
  const scan = scanMessage(reply, wantTtls, into);
  if (scan === null || scan.end !== reply.length) return 'malformed';
  if (scan.qEnd < 0 || scan.qEnd !== sentQEnd) return 'question';
  // Name case-insensitively; type and class byte for byte (they may hold 0x41-0x5a too).
  const nameEnd = scan.qNameEnd;
  if (!sameName(reply, HEADER_LEN, sent, HEADER_LEN, nameEnd - HEADER_LEN)) return 'question';
  if (u32(reply, nameEnd) !== u32(sent, nameEnd)) return 'question';
  return scan;
}

// --- Negative answers (beside validity: a valid reply may still say "no") ---

/** What a valid NOERROR/NXDOMAIN reply says about the question. */
export const POSITIVE = 0;
export const NEG_NXDOMAIN = 1;
/** NOERROR without a record of the asked type at the name or its CNAME target. */
export const NEG_NODATA = 2;
export type AnswerKind = typeof POSITIVE | typeof NEG_NXDOMAIN | typeof NEG_NODATA;

const TYPE_ANY = 255;
/** CNAME hops followed before giving up (a longer chain is answered as it is: positive). */
const MAX_HOPS = 8;
/** Name comparisons per reply at most: a huge crafted answer section costs bounded work, and is not held. */
const MAX_COMPARES = 512;

/**
 * POSITIVE, NEG_NXDOMAIN or NEG_NODATA for a reply whose RCODE wins.
 * The common cases cost a comparison or two: NXDOMAIN, an empty answer
 * section, a first record that is the asked type at the question name
 * (compressed as a pointer to offset 12). No allocation.
 */
export function negativeKind(reply: Buffer, scan: Scan, qtype: number): AnswerKind {
  if (scan.rcode === Rcode.NXDOMAIN) return NEG_NXDOMAIN;
  if (scan.ancount === 0) return NEG_NODATA;
  // The usual positive reply: the first record is the asked type, owned by a pointer to the question.
  const first = scan.qEnd;
  if (reply[first] === 0xc0 && reply[first + 1] === HEADER_LEN && first + 4 <= reply.length && u16(reply, first + 2) === qtype) return POSITIVE;
  let target = HEADER_LEN;
  let compares = 0;
  for (let hop = 0; hop <= MAX_HOPS; hop++) {
    let off = scan.qEnd;
    let next = -1;
    for (let i = 0; i < scan.ancount; i++) {
      const owner = off;
      off = skipName(reply, off, true);
      if (off < 0) return POSITIVE; // cannot happen after scanMessage; never hold on doubt
      const type = u16(reply, off);
      const rdata = off + 10;
      off = rdata + u16(reply, off + 8);
      if (type !== Type.CNAME && type !== qtype && qtype !== TYPE_ANY) continue;
      if (++compares > MAX_COMPARES) return POSITIVE;
      if (!namesEqual(reply, owner, target)) continue;
      if (type === qtype || qtype === TYPE_ANY) return POSITIVE;
      next = rdata;
    }
    if (next < 0) return NEG_NODATA;
    target = next;
  }
  return POSITIVE;
}

/** Follows compression pointers (at most a few, backwards or not) to the label at `off`; -1 if bad. */
function resolvePointer(buf: Buffer, off: number): number {
  for (let n = 0; n < 32; n++) {
    if (off >= buf.length) return -1;
    const len = buf[off]!;
    if ((len & 0xc0) !== 0xc0) return len & 0xc0 ? -1 : off;
    if (off + 1 >= buf.length) return -1;
    off = ((len & 0x3f) << 8) | buf[off + 1]!;
  }
  return -1;
}

/** Two (possibly compressed) names in one message, compared case-insensitively. */
export function namesEqual(buf: Buffer, a: number, b: number): boolean {
  for (let labels = 0; labels < 128; labels++) {
    a = resolvePointer(buf, a);
    b = resolvePointer(buf, b);
    if (a < 0 || b < 0) return false;
    if (a === b) return true;
    const len = buf[a]!;
    if (len !== buf[b]) return false;
    if (len === 0) return true;
    if (a + len >= buf.length || b + len >= buf.length) return false;
    if (!sameName(buf, a + 1, buf, b + 1, len)) return false;
    a += len + 1;
    b += len + 1;
  }
  return false;
}
