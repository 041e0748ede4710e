// Extended DNS Errors (RFC 8914), built by bytes: the EDNS option raced adds
// when it, not an upstream, is the reason for an answer. Only for clients
// that sent an OPT (the callers check); the text is short and fixed, never a
// name or an address. An upstream's own EDE options are relayed as they are.
import { HEADER_LEN, Type } from './constants.js';
import { scanMessage } from './message.js';
import { copyBytes, put16, u16 } from './bytes.js';

/** The EDNS option code of an Extended DNS Error. */
export const EDE_OPTION = 15;

/** The INFO-CODEs raced gives. */
export const EDE = {
  STALE_ANSWER: 3,
  BLOCKED: 15,
  PROHIBITED: 18,
  STALE_NXDOMAIN: 19,
  NO_REACHABLE_AUTHORITY: 22,
  NETWORK_ERROR: 23,
} as const;

const TEXT: Record<number, string> = {
  [EDE.STALE_ANSWER]: 'stale answer',
  [EDE.BLOCKED]: 'private address for a public name',
  [EDE.PROHIBITED]: 'client not allowed',
  [EDE.STALE_NXDOMAIN]: 'stale NXDOMAIN',
  [EDE.NO_REACHABLE_AUTHORITY]: 'no upstream answered in time',
  [EDE.NETWORK_ERROR]: 'every upstream unreachable',
};

/** Each code's whole option (code, length, INFO-CODE, text), made once. */
const OPTIONS = new Map<number, Buffer>();
for (const [code, text] of Object.entries(TEXT)) {
  const t = Buffer.from(text, 'utf8');
  const b = Buffer.alloc(6 + t.length);
  put16(b, 0, EDE_OPTION);
  put16(b, 2, 2 + t.length);
  put16(b, 4, Number(code));
  t.copy(b, 6);
  OPTIONS.set(Number(code), b);
}

/** The option bytes for `code` (an unknown code gets no text). */
export function edeOption(code: number): Buffer {
  let b = OPTIONS.get(code);
  if (b === undefined) {
    b = Buffer.alloc(6);
    put16(b, 0, EDE_OPTION);
    put16(b, 2, 2);
    put16(b, 4, code);
    OPTIONS.set(code, b);
  }
  return b;
}

/**
 * `reply` (a client's finished reply) with the EDE option added to its OPT,
 * or a new OPT holding it when it has none. Unchanged when it would no
 * longer fit `maxSize` (the error is advice; the answer is not) or does not
 * parse. Slow path: stale answers only.
 */
export function addEde(reply: Buffer, code: number, maxSize: number, udpSize: number): Buffer {
  const scan = scanMessage(reply, false);
  if (scan === null) return reply;
  const opt = edeOption(code);
  if (scan.opt >= 0) {
    if (reply.length + opt.length > maxSize) return reply;
    const out = Buffer.allocUnsafe(reply.length + opt.length);
    copyBytes(reply, out, 0, 0, scan.optEnd);
    copyBytes(opt, out, scan.optEnd, 0, opt.length);
    copyBytes(reply, out, scan.optEnd + opt.length, scan.optEnd, reply.length);
    put16(out, scan.opt + 9, u16(reply, scan.opt + 9) + opt.length);
    return out;
  }
  const add = 11 + opt.length;
  if (reply.length + add > maxSize || reply.length < HEADER_LEN) return reply;
  const out = Buffer.allocUnsafe(reply.length + add);
  copyBytes(reply, out, 0, 0, reply.length);
  let o = reply.length;
  out[o] = 0;
  put16(out, o + 1, Type.OPT);
  put16(out, o + 3, udpSize);
  put16(out, o + 5, 0);
  put16(out, o + 7, 0);
  put16(out, o + 9, opt.length);
  o += 11;
  copyBytes(opt, out, o, 0, opt.length);
  put16(out, 10, u16(reply, 10) + 1);
  return out;
}
