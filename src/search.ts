// Search domains for stubs that do not search (musl), with go-dnsmasq's
// semantics: a name with fewer than ndots dots is tried with each search
// domain first and as asked last; one with at least ndots dots as asked
// first. The answer carries the question as asked and, when a qualified name
// answered, a CNAME from the asked name to it followed by its records, so any
// stub accepts it. Each try goes through the whole pipeline (hosts, cache,
// coalescing, race) as an internal query. Slow path: dns-packet is used here.
import dnsPacket from 'dns-packet';
import { randomInt } from 'node:crypto';
import { scanMessage, nameToText, type ParsedQuery } from './wire/message.js';
import { clientUdpLimit, shapeReply } from './wire/build.js';
import type { Client } from './pipeline.js';

export interface SearchOptions {
  domains: readonly string[];
  ndots: number;
}

/** The names to try, in order, for a name (no trailing dot) with `dots` dots. */
export function candidates(name: string, o: SearchOptions): string[] {
  const dots = name === '' ? 0 : name.split('.').length - 1;
  const qualified = o.domains.map((d) => `${name}.${d}`);
  return dots >= o.ndots ? [name, ...qualified] : [...qualified, name];
}

type Resolve = (query: Buffer, client: Client) => void;

/** An internal client: the reply comes back to us, not to a socket. */
function ask(resolve: Resolve, name: string, type: string, pq: ParsedQuery): Promise<Buffer> {
  const query = dnsPacket.encode({
    type: 'query',
    id: randomInt(65536),
    flags: (pq.rd ? dnsPacket.RECURSION_DESIRED : 0) | (pq.cd ? dnsPacket.CHECKING_DISABLED : 0),
    questions: [{ name, type: type as dnsPacket.RecordType, class: 'IN' }],
    additionals: pq.edns ? [{ name: '.', type: 'OPT', udpPayloadSize: 1232, flags: pq.ednsDo ? dnsPacket.DNSSEC_OK : 0 } as unknown as dnsPacket.Answer] : [],
  });
  return new Promise((res) => resolve(query, { transport: 'tcp', address: '127.0.0.1', port: 0, internal: true, respond: res }));
}

/**
 * Answers `msg` by trying each candidate name; returns false when the query
 * is not one that searching applies to (then the caller goes on as usual).
 */
export function searchAndAnswer(msg: Buffer, pq: ParsedQuery, client: Client, o: SearchOptions, resolve: Resolve, ednsPacketMax: number): boolean {
  if (o.domains.length === 0 || pq.question.qclass !== 1) return false;
  const asked = nameToText(msg).replace(/\.$/, '');
  if (asked === '' || asked.includes('\\')) return false;
  const type = dnsPacket.decode(msg).questions?.[0]?.type ?? 'A';
  void (async () => {
    let last: Buffer | null = null;
    for (const name of candidates(asked, o)) {
      const reply = await ask(resolve, name, type, pq);
      last = reply;
      const rcode = reply[3]! & 0x0f;
      if (rcode === 0 && (reply.readUInt16BE(6) > 0 || name === asked)) return respond(reply, name);
    }
    respond(last!, asked);
  })();
  return true;

  function respond(reply: Buffer, answered: string): void {
    let out: Buffer;
    if (answered.toLowerCase() === asked.toLowerCase()) {
      out = reply;
    } else {
      const p = dnsPacket.decode(reply);
      out = dnsPacket.encode({
        type: 'response',
        id: 0,
        flags: p.flags,
        questions: [{ name: asked, type: type as dnsPacket.RecordType, class: 'IN' }],
        answers: [{ name: asked, type: 'CNAME', class: 'IN', ttl: Math.min(...(p.answers ?? []).map((a) => (a as { ttl?: number }).ttl ?? 0), 300), data: answered }, ...(p.answers ?? [])],
        authorities: p.authorities,
        additionals: p.additionals,
      } as dnsPacket.Packet);
    }
    const scan = scanMessage(out, false);
    if (scan === null) return client.respond(out);
    const limit = client.transport === 'udp' ? clientUdpLimit(pq, ednsPacketMax) : 65535;
    client.respond(shapeReply(out, scan, msg, pq, limit, 0));
  }
}
