// The EDNS options raced adds to queries on its upstream streams, and takes
// out of the replies before they can reach a client:
// - TCP keepalive (RFC 7828): asked for on every pooled TCP or TLS
//   connection; the server's idle timeout is read from its replies. The
//   option must never travel over UDP (§3.3.2).
// - Padding (RFC 7830) over TLS, to a multiple of 128 bytes (RFC 8467's
//   block-length strategy for queries), so the size of an encrypted query
//   says less about the name in it. Servers pad their replies only to padded
//   queries; that padding means nothing to a client and is removed.
import { Type } from './constants.js';
import type { Scan } from './message.js';

export const OPT_TCP_KEEPALIVE = 11;
export const OPT_PADDING = 12;
const OPT_FIXED = 11; // owner, type, class, ttl, rdlen
const QUERY_BLOCK = 128;

/**
 * `query` with an empty edns-tcp-keepalive option added to its OPT and, when
 * `pad`, padding up to a multiple of 128 bytes. Only raced's own upstream OPT
 * (the last record, no options yet) is extended; any other query is returned
 * as it is.
 */
export function withStreamOptions(query: Buffer, pad: boolean, keepalive = true): Buffer {
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
  if (!pad && !keepalive) return query;
  const unpadded = query.length + (keepalive ? 4 : 0);
  const padLen = pad ? (QUERY_BLOCK - ((unpadded + 4) % QUERY_BLOCK)) % QUERY_BLOCK : -1;
  const out = Buffer.alloc(unpadded + (pad ? 4 + padLen : 0));
  query.copy(out);
  out.writeUInt16BE(out.length - query.length, opt + 9);
  if (keepalive) out.writeUInt32BE(OPT_TCP_KEEPALIVE << 16, query.length); // code 11, length 0
  if (pad) out.writeUInt32BE((OPT_PADDING << 16) | padLen, unpadded); // zeros follow
  return out;
}

export interface StreamReply {
  /** The server's idle timeout in units of 100 ms; -1 when the reply had no keepalive option. */
  keepalive: number;
  /** The reply without keepalive and padding, and its scan; the inputs themselves when it had neither. */
  msg: Buffer;
  scan: Scan;
}

/** Reads edns-tcp-keepalive from a scanned reply's OPT and removes it and any padding. */
export function takeStreamOptions(msg: Buffer, scan: Scan): StreamReply {
  if (scan.opt < 0) return { keepalive: -1, msg, scan };
  const rdStart = scan.opt + OPT_FIXED;
  let keepalive = -1;
  const cuts: [number, number][] = [];
  let cut = 0;
  for (let at = rdStart; at + 4 <= scan.optEnd; ) {
    const code = msg.readUInt16BE(at);
    const next = at + 4 + msg.readUInt16BE(at + 2);
    if (next > scan.optEnd) break;
    if (code === OPT_TCP_KEEPALIVE || code === OPT_PADDING) {
      if (code === OPT_TCP_KEEPALIVE && next - at >= 6) keepalive = msg.readUInt16BE(at + 4);
      cuts.push([at, next]);
      cut += next - at;
    }
    at = next;
  }
  if (cut === 0) return { keepalive, msg, scan };
  const out = Buffer.allocUnsafe(scan.end - cut);
  let from = 0;
  let to = 0;
  for (const [a, b] of cuts) {
    to += msg.copy(out, to, from, a);
    from = b;
  }
  msg.copy(out, to, from, scan.end);
  out.writeUInt16BE(scan.optEnd - rdStart - cut, scan.opt + 9);
  const shifted: Scan = {
    ...scan,
    optEnd: scan.optEnd - cut,
    end: scan.end - cut,
    ttls: scan.ttls && scan.ttls.map((t) => (t > scan.opt ? t - cut : t)),
  };
  return { keepalive, msg: out, scan: shifted };
}
