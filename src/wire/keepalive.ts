// EDNS TCP keepalive (RFC 7828) on raced's upstream streams: ask for it on
// every query sent over a pooled TCP or TLS connection, read the server's idle
// timeout from its replies, and take the option out of the reply before it
// can reach a client (the option must never travel over UDP, §3.3.2).
import { Type } from './constants.js';
import type { Scan } from './message.js';

export const OPT_TCP_KEEPALIVE = 11;
const OPT_FIXED = 11; // owner, type, class, ttl, rdlen

/**
 * `query` with an empty edns-tcp-keepalive option added to its OPT. Only
 * raced's own upstream OPT (the last record, no options yet) is extended; any
 * other query is returned as it is.
 */
export function withKeepalive(query: Buffer): Buffer {
  const opt = query.length - OPT_FIXED;
  if (
    opt < 12 ||
    query.readUInt16BE(10) === 0 ||
    query[opt] !== 0 ||
    query.readUInt16BE(opt + 1) !== Type.OPT ||
    query.readUInt16BE(opt + 9) !== 0
  ) {
    return query;
  }
  const out = Buffer.allocUnsafe(query.length + 4);
  query.copy(out);
  out.writeUInt16BE(4, opt + 9);
  out.writeUInt32BE(OPT_TCP_KEEPALIVE << 16, query.length); // code 11, length 0
  return out;
}

export interface Keepalive {
  /** The server's idle timeout in units of 100 ms; -1 when the reply had no option. */
  timeout: number;
  /** The reply without the option, and its scan; the inputs themselves when there was none. */
  msg: Buffer;
  scan: Scan;
}

/** Finds edns-tcp-keepalive in a scanned reply's OPT and removes it. */
export function takeKeepalive(msg: Buffer, scan: Scan): Keepalive {
  const none = { timeout: -1, msg, scan };
  if (scan.opt < 0) return none;
  const rdStart = scan.opt + OPT_FIXED;
  let at = rdStart;
  while (at + 4 <= scan.optEnd) {
    const code = msg.readUInt16BE(at);
    const len = msg.readUInt16BE(at + 2);
    const next = at + 4 + len;
    if (next > scan.optEnd) return none;
    if (code === OPT_TCP_KEEPALIVE) {
      const timeout = len >= 2 ? msg.readUInt16BE(at + 4) : -1;
      const cut = next - at;
      const out = Buffer.allocUnsafe(scan.end - cut);
      msg.copy(out, 0, 0, at);
      msg.copy(out, at, next, scan.end);
      out.writeUInt16BE(scan.optEnd - rdStart - cut, scan.opt + 9);
      const shifted: Scan = {
        ...scan,
        optEnd: scan.optEnd - cut,
        end: scan.end - cut,
        ttls: scan.ttls && scan.ttls.map((t) => (t > scan.opt ? t - cut : t)),
      };
      // A server that sent the option without a timeout still said "keepalive": no number, no change.
      return { timeout, msg: out, scan: shifted };
    }
    at = next;
  }
  return none;
}
