// The one definition of "the same question" for coalescing and caching:
// lower-cased wire name + type + class + DO + CD.
import { HEADER_LEN } from './constants.js';
import type { ParsedQuery } from './message.js';

const scratch = Buffer.allocUnsafe(255 + 5);

export function questionKey(query: Buffer, pq: ParsedQuery): string {
  const { nameEnd } = pq.question;
  let n = 0;
  for (let i = HEADER_LEN; i < nameEnd; i++) {
    const c = query[i]!;
    scratch[n++] = c >= 0x41 && c <= 0x5a ? c | 0x20 : c;
  }
  // type and class, then one byte of flags
  scratch[n++] = query[nameEnd]!;
  scratch[n++] = query[nameEnd + 1]!;
  scratch[n++] = query[nameEnd + 2]!;
  scratch[n++] = query[nameEnd + 3]!;
  scratch[n++] = (pq.ednsDo ? 1 : 0) | (pq.cd ? 2 : 0);
  return scratch.toString('latin1', 0, n);
}
