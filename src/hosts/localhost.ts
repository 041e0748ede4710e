// RFC 6761 §6.3: `localhost.` and every name under it are answered here and
// never forwarded: A 127.0.0.1, AAAA ::1, any other type an empty NOERROR.
// A resolver that sits in resolv.conf must not send them upstream; dnsmasq
// answers them from /etc/hosts, unbound from a built-in zone. The check is a
// walk to the last label of the question, a few byte compares per query.
import { CLASS_IN, HEADER_LEN, Type } from '../wire/constants.js';
import { sameName, type ParsedQuery } from '../wire/message.js';
import { localAnswer } from '../wire/build.js';

const LABEL = Buffer.from('localhost', 'latin1');
const V4 = Buffer.from([127, 0, 0, 1]);
const V6 = Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
const TTL = 3600;

/** Whether the question name (validated, uncompressed, at offset 12) ends in the label `localhost`. */
export function isLocalhostName(msg: Buffer): boolean {
  let last = -1;
  for (let off = HEADER_LEN; msg[off]! !== 0; off += msg[off]! + 1) last = off;
  return last >= 0 && msg[last] === LABEL.length && sameName(msg, last + 1, LABEL, 0, LABEL.length);
}

/** The local reply for a localhost name, or null for any other name or class. */
export function localhostAnswer(msg: Buffer, pq: ParsedQuery, udpSize: number): Buffer | null {
  if (pq.question.qclass !== CLASS_IN || !isLocalhostName(msg)) return null;
  const t = pq.question.qtype;
  return localAnswer(msg, pq, t === Type.A ? [V4] : t === Type.AAAA ? [V6] : [], TTL, udpSize);
}
