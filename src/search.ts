// Search domains for stubs that do not search (musl), with go-dnsmasq's
// order: a name with fewer than ndots dots is tried with each search domain
// first and as asked last; one with at least ndots dots as asked first. Each
// try is an internal query through the whole pipeline (hosts, cache,
// coalescing, race). The client gets its question as asked; when a qualified
// name answered, a CNAME from the asked name to it in front of its records.
//
// Which answer (glibc's res_search): the first try with records wins; else,
// if any try found the name (NOERROR without records), NODATA — never
// NXDOMAIN for a name that exists, or musl fails a whole getaddrinfo; else
// the first error other than NXDOMAIN (SERVFAIL...); else NXDOMAIN.
// All by bytes; malformed input never throws: a reply that cannot be read
// makes SERVFAIL.
import { randomInt } from 'node:crypto';
import { HEADER_LEN, Rcode } from './wire/constants.js';
import { scanMessage, type ParsedQuery } from './wire/message.js';
import { errorReply, replyLimit, shapeReply, textToWire } from './wire/build.js';
import { aliasReply, internalQuery } from './wire/alias.js';
import type { Client, ClientTransport } from './client.js';

export interface SearchOptions {
  domains: readonly string[];
  ndots: number;
}

/** The order of tries: the qualified names, and the name as asked first or last by its dots. */
function order<T>(asked: T, qualified: T[], dots: number, ndots: number): T[] {
  return dots >= ndots ? [asked, ...qualified] : [...qualified, asked];
}

/** The names to try, in order, for a name (text, no trailing dot). */
export function candidates(name: string, o: SearchOptions): string[] {
  const dots = name === '' ? 0 : name.split('.').length - 1;
  return order(name, o.domains.map((d) => `${name}.${d}`), dots, o.ndots);
}

interface Try {
  name: Buffer;
  asked: boolean;
}

/** The tries for the question name of `msg` (wire, validated), names over 255 bytes left out. */
function tries(msg: Buffer, nameEnd: number, o: SearchOptions): Try[] {
  const asked = msg.subarray(HEADER_LEN, nameEnd);
  let labels = 0;
  for (let off = HEADER_LEN; msg[off]! !== 0; off += msg[off]! + 1) labels++;
  const qualified: Try[] = [];
  for (const d of o.domains) {
    const suffix = textToWire(d);
    if (suffix.length <= 1 || asked.length - 1 + suffix.length > 255) continue;
    qualified.push({ name: Buffer.concat([asked.subarray(0, asked.length - 1), suffix]), asked: false });
  }
  return order({ name: asked, asked: true }, qualified, labels - 1, o.ndots);
}

/** How the pipeline runs an internal query, and how the searched reply leaves (Pipeline.send). */
export interface SearchContext {
  resolve(query: Buffer, client: Client): void;
  reply(reply: Buffer): void;
  transport: ClientTransport;
  ednsPacketMax: number;
}

function ask(ctx: SearchContext, name: Buffer, pq: ParsedQuery): Promise<Buffer> {
  const query = internalQuery(name, pq.question.qtype, pq, randomInt(65536));
  return new Promise((respond) => ctx.resolve(query, { transport: 'tcp', address: '127.0.0.1', port: 0, internal: true, respond }));
}

interface Outcome {
  reply: Buffer;
  try: Try;
}

/**
 * Answers `msg` by trying each candidate name; returns false when searching
 * does not apply (no domains, not class IN, the root), and the caller goes on as usual.
 */
export function searchAndAnswer(msg: Buffer, pq: ParsedQuery, o: SearchOptions, ctx: SearchContext): boolean {
  if (o.domains.length === 0 || pq.question.qclass !== 1 || msg[HEADER_LEN] === 0) return false;
  const list = tries(msg, pq.question.nameEnd, o);
  const limit = replyLimit(pq, ctx.transport === 'udp', ctx.ednsPacketMax);
  let done = false;
  const reply = (out: Buffer): void => {
    if (done) return;
    done = true;
    ctx.reply(out);
  };
  const fail = (): void => reply(errorReply(msg, pq.question, Rcode.SERVFAIL, pq.edns, ctx.ednsPacketMax));
  void (async () => {
    let nodata: Outcome | null = null;
    let error: Outcome | null = null;
    let nxdomain: Outcome | null = null;
    for (const t of list) {
      const got = await ask(ctx, t.name, pq);
      const scan = scanMessage(got, false);
      if (scan === null) return fail();
      if (scan.rcode === Rcode.NOERROR) {
        if (scan.ancount > 0) return reply(shaped({ reply: got, try: t }));
        nodata ??= { reply: got, try: t };
      } else if (scan.rcode === Rcode.NXDOMAIN) {
        if (nxdomain === null || t.asked) nxdomain = { reply: got, try: t };
      } else {
        error ??= { reply: got, try: t };
      }
    }
    reply(shaped((nodata ?? error ?? nxdomain)!));
  })().catch(fail);
  return true;

  /** The outcome for the client: as it came when the name as asked answered, else behind a CNAME. */
  function shaped(out: Outcome): Buffer {
    let got = out.reply;
    if (!out.try.asked) {
      // An error for a qualified name says nothing about the asked one: only the RCODE is passed on.
      const rcode = got[3]! & 0x0f;
      if (rcode !== Rcode.NOERROR) return errorReply(msg, pq.question, rcode, pq.edns, ctx.ednsPacketMax);
      const alias = aliasReply(got, scanMessage(got, false)!, msg, pq, out.try.name);
      if (alias === null) return errorReply(msg, pq.question, Rcode.SERVFAIL, pq.edns, ctx.ednsPacketMax);
      got = alias;
    }
    const scan = scanMessage(got, false);
    if (scan === null || scan.qEnd < 0) return errorReply(msg, pq.question, Rcode.SERVFAIL, pq.edns, ctx.ednsPacketMax);
    return shapeReply(got, scan, msg, pq, limit, 0);
  }
}
