// Does raced answer on its own listen addresses? Used before raced touches
// the host's resolv.conf: any one address answering is enough (p-any).
import dgram from 'node:dgram';
import pAny from 'p-any';
import type { Endpoint } from './net/address.js';

/** A STATUS-opcode query: raced answers NOTIMP at once, without asking any upstream. */
function probe(ep: Endpoint, timeoutMs: number): Promise<Endpoint> {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket(ep.family === 4 ? 'udp4' : 'udp6');
    const done = (err: Error | null): void => {
      clearTimeout(t);
      s.close();
      if (err) reject(err);
      else resolve(ep);
    };
    const t = setTimeout(() => done(new Error(`no answer from ${ep.label}`)), timeoutMs);
    s.on('message', () => done(null));
    s.on('error', (err) => done(err));
    s.send(Buffer.from([0x52, 0x43, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0]), ep.port, ep.host);
  });
}

export async function answersOn(endpoints: readonly Endpoint[], timeoutMs = 2000): Promise<Endpoint> {
  return pAny(endpoints.map((ep) => probe(ep, timeoutMs)));
}
