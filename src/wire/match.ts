// The one definition of a valid reply to an upstream leg (RFC 5452 §9.1).
// The transport has already checked that it came from the exact address and
// port the leg was sent to.
import { FLAG_QR, HEADER_LEN, OPCODE_MASK } from './constants.js';
import { sameName, scanMessage, type Scan } from './message.js';
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
