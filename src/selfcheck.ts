// Does raced answer on its own listen addresses? Used before raced touches
// the host's resolv.conf: any one address answering is enough. p-any rather
// than Promise.any: once one probe answers it cancels the others (each probe
// is a promise with a cancel() that closes its socket and clears its timer),
// so a silent address does not hold a socket and a 2 s timer after the answer.
import dgram from 'node:dgram';
import pAny from 'p-any';
import type { Endpoint } from './net/address.js';

type Probe = Promise<Endpoint> & { cancel(): void };

/** A STATUS-opcode query: raced answers NOTIMP at once, without asking any upstream. */
export function probe(ep: Endpoint, timeoutMs: number): Probe {
  let stop = (): void => {};
  const p = new Promise<Endpoint>((resolve, reject) => {
    const s = dgram.createSocket(ep.family === 4 ? 'udp4' : 'udp6');
    let open = true;
    const done = (err: Error | null): void => {
      if (!open) return;
      open = false;
      clearTimeout(t);
      s.close();
      if (err) reject(err);
      else resolve(ep);
    };
    const t = setTimeout(() => done(new Error(`no answer from ${ep.label}`)), timeoutMs);
    s.on('message', () => done(null));
    s.on('error', (err) => done(err));
    s.send(Buffer.from([0x52, 0x43, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0]), ep.port, ep.host);
    stop = () => done(new Error(`probe of ${ep.label} cancelled: another address answered`));
  });
  // A cancelled probe's rejection is p-any's to ignore, not an unhandled one.
  p.catch(() => {});
  return Object.assign(p, { cancel: () => stop() });
}

export async function answersOn(endpoints: readonly Endpoint[], timeoutMs = 2000): Promise<Endpoint> {
  return pAny(endpoints.map((ep) => probe(ep, timeoutMs)));
}
