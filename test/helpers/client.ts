// Test clients: raw UDP/TCP exchanges with raced, and raced started in-process.
import dgram from 'node:dgram';
import net from 'node:net';
import dnsPacket from 'dns-packet';
import { FrameReader, frame } from '../../src/net/framing.js';
import { Raced } from '../../src/raced.js';
import { defaultOptions, type Options } from '../../src/config/options.js';
import { parseEndpoint } from '../../src/net/address.js';
import { parseUpstream } from '../../src/upstream/address.js';
import { Logger } from '../../src/log.js';

export interface QueryOpts {
  type?: dnsPacket.RecordType;
  id?: number;
  edns?: boolean | number;
  dnssecOk?: boolean;
  cd?: boolean;
  rd?: boolean;
}

export function makeQuery(name: string, o: QueryOpts = {}): Buffer {
  const edns = o.edns === undefined ? false : o.edns;
  return dnsPacket.encode({
    type: 'query',
    id: o.id ?? Math.floor(Math.random() * 65536),
    flags: (o.rd === false ? 0 : dnsPacket.RECURSION_DESIRED) | (o.cd ? dnsPacket.CHECKING_DISABLED : 0),
    questions: [{ name, type: o.type ?? 'A', class: 'IN' }],
    additionals: edns
      ? [{ name: '.', type: 'OPT', udpPayloadSize: typeof edns === 'number' ? edns : 1232, flags: o.dnssecOk ? dnsPacket.DNSSEC_OK : 0 } as unknown as dnsPacket.Answer]
      : [],
  } as dnsPacket.Packet);
}

/** Sends raw bytes over UDP; resolves with the first reply, or null after `waitMs`. */
export function udpRaw(port: number, msg: Buffer, waitMs = 2000): Promise<Buffer | null> {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    const t = setTimeout(() => {
      s.close();
      resolve(null);
    }, waitMs);
    s.on('message', (m) => {
      clearTimeout(t);
      s.close();
      resolve(m);
    });
    s.send(msg, port, '127.0.0.1');
  });
}

/** A decoded reply; @types/dns-packet leaves out rcode. */
export type Reply = dnsPacket.Packet & { rcode?: string };

export function decode(raw: Buffer): Reply {
  return dnsPacket.decode(raw) as Reply;
}

export async function udpQuery(port: number, name: string, o: QueryOpts = {}, waitMs = 5000): Promise<{ raw: Buffer; packet: Reply }> {
  const raw = await udpRaw(port, makeQuery(name, o), waitMs);
  if (raw === null) throw new Error(`no UDP reply for ${name} within ${waitMs} ms`);
  return { raw, packet: decode(raw) };
}

/** The data of the first record of `type` in the answer section. */
export function firstData(p: dnsPacket.Packet, type = 'A'): string | undefined {
  const a = p.answers?.find((r) => r.type === type) as { data?: unknown } | undefined;
  return a ? String(a.data) : undefined;
}

/** One TCP connection: send each message (framed) and collect `expect` replies. */
export function tcpExchange(port: number, msgs: Buffer[], expect: number, waitMs = 5000, chunked = false): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const out: Buffer[] = [];
    const reader = new FrameReader();
    const sock = net.connect(port, '127.0.0.1');
    const t = setTimeout(() => {
      sock.destroy();
      reject(new Error(`got ${out.length} of ${expect} TCP replies`));
    }, waitMs);
    sock.on('connect', async () => {
      const all = Buffer.concat(msgs.map(frame));
      if (!chunked) sock.write(all);
      else {
        for (const b of all) {
          sock.write(Buffer.from([b]));
          await new Promise((r) => setTimeout(r, 1));
        }
      }
    });
    sock.on('data', (c) =>
      reader.push(c, (m) => {
        out.push(Buffer.from(m));
        if (out.length === expect) {
          clearTimeout(t);
          sock.destroy();
          resolve(out);
        }
      }),
    );
    sock.on('error', reject);
  });
}

export interface Running {
  raced: Raced;
  port: number;
  logs: string[];
  close(): Promise<void>;
}

/** raced in this process on 127.0.0.1:<free port>, forwarding to `servers`. */
export async function startRaced(servers: string[], over: Partial<Options> = {}): Promise<Running> {
  const opts: Options = {
    ...defaultOptions(),
    listen: [parseEndpoint('127.0.0.1:0', 53, true)],
    servers: servers.map(parseUpstream),
    cacheSize: 0,
    timeoutMs: 1500,
    logLevel: 'debug',
    ...over,
  };
  const logs: string[] = [];
  const raced = new Raced(opts, new Logger(opts.logLevel, (l) => logs.push(l)));
  await raced.start();
  return { raced, port: raced.bound[0]!.port, logs, close: () => raced.stop(0) };
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
