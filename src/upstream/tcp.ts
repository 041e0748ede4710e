// One query over a fresh TCP connection: used when an upstream truncates its
// UDP reply (unbound does the same) and for upstreams configured as tcp://.
import net from 'node:net';
import type { Endpoint } from '../net/address.js';
import { FrameReader, frame } from '../net/framing.js';

export interface TcpExchange {
  cancel(): void;
}

/**
 * Sends `packet` and calls `onReply` for every message received until the
 * caller cancels, or `onError` once on failure. Validation is the caller's.
 */
export function tcpExchange(
  ep: Endpoint,
  packet: Buffer,
  onReply: (msg: Buffer) => void,
  onError: () => void,
): TcpExchange {
  const reader = new FrameReader();
  let done = false;
  const sock = net.connect({ host: ep.host, port: ep.port, noDelay: true });
  const fail = (): void => {
    if (done) return;
    done = true;
    sock.destroy();
    onError();
  };
  sock.on('connect', () => sock.write(frame(packet)));
  sock.on('data', (chunk) => reader.push(chunk, (msg) => !done && onReply(msg)));
  sock.on('error', fail);
  sock.on('end', fail);
  sock.on('close', fail);
  return {
    cancel: () => {
      done = true;
      sock.destroy();
    },
  };
}
