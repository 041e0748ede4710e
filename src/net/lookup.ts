import type dgram from 'node:dgram';

/**
 * Addresses here are always IP literals (net/address.ts): answering the
 * lookup at once saves dgram's dns.lookup round through process.nextTick on
 * every send.
 */
export const literalLookup = ((host: string, family: unknown, cb: (err: null, addr: string, family: number) => void) =>
  cb(null, host, host.includes(':') ? 6 : 4)) as unknown as dgram.SocketOptions['lookup'];
