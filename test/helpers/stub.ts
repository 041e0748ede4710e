// A stand-in upstream resolver on 127.0.0.1 (UDP and TCP on one port) whose
// behaviour a test sets and changes while it runs; it counts what it gets.
import dgram from 'node:dgram';
import net from 'node:net';
import tls from 'node:tls';
import dnsPacket from 'dns-packet';
import { FrameReader, frame } from '../../src/net/framing.js';

export type Behaviour =
  | 'answer'
  | 'drop'
  | 'servfail'
  | 'refused'
  | 'notimp'
  | 'formerr'
  | 'wrong-id'
  | 'wrong-question'
  | 'qr0'
  | 'short'
  | 'garbage'
  | 'trailing'
  | 'bad-counts'
  | 'truncate'
  | 'other-port';

/** The A record of every deliberately bad reply (wrong ID, other port, ...): never the real answer. */
export const SPOOFED_ADDRESS = '203.0.113.66';

export interface StubOptions {
  behaviour?: Behaviour;
  delayMs?: number;
  /** After a bad reply (wrong-id, ...), also send the correct one this much later. */
  thenAnswerAfterMs?: number;
  address?: string;
  ttl?: number;
  /** Records of the answer; by default one A record. */
  answers?: (name: string, type: string) => dnsPacket.Answer[];
  /** Extra A records to make the reply large. */
  bulk?: number;
  /** Only names under this zone exist; others get NXDOMAIN. */
  zone?: string;
  /** Per-name delay, in place of delayMs. */
  delayFor?: (name: string) => number;
  /** TCP side speaks TLS (a DoT stand-in) with this key and certificate (PEM). */
  tls?: { key: string; cert: string };
  /** Stream side: on the Nth query of a connection, close it without answering that query. */
  closeAfter?: number;
  /** Where to listen; default 127.0.0.1 on a free port. */
  host?: string;
  port?: number;
}

export interface Received {
  name: string;
  type: string;
  transport: 'udp' | 'tcp';
  packet: dnsPacket.Packet;
  raw: Buffer;
}

export class Stub {
  readonly udp = dgram.createSocket('udp4');
  readonly tcp: net.Server;
  port = 0;
  received: Received[] = [];
  bytesIn = 0;
  bytesOut = 0;
  private readonly conns = new Set<net.Socket>();
  private readonly timers = new Set<NodeJS.Timeout>();
  /** Stream connections accepted so far. */
  connections = 0;

  constructor(public opts: StubOptions = {}) {
    this.udp.on('message', (msg, rinfo) => this.onQuery(msg, 'udp', (out) => this.udp.send(out, rinfo.port, rinfo.address), rinfo.port));
    this.udp.on('error', () => {});
    const onConn = (sock: net.Socket): void => {
      this.conns.add(sock);
      this.connections++;
      const reader = new FrameReader();
      let n = 0;
      sock.on('data', (c) =>
        reader.push(c, (msg) => {
          if (++n === opts.closeAfter) return void sock.destroy();
          this.onQuery(msg, 'tcp', (out) => !sock.destroyed && sock.write(frame(out)));
        }),
      );
      sock.on('error', () => {});
      sock.on('close', () => this.conns.delete(sock));
    };
    this.tcp = opts.tls ? tls.createServer({ key: opts.tls.key, cert: opts.tls.cert }, onConn) : net.createServer(onConn);
    this.tcp.on('tlsClientError', () => {});
  }

  static async start(opts: StubOptions = {}): Promise<Stub> {
    const s = new Stub(opts);
    const host = opts.host ?? '127.0.0.1';
    await new Promise<void>((r) => s.udp.bind(opts.port ?? 0, host, r));
    s.port = s.udp.address().port;
    s.host = host;
    try {
      await new Promise<void>((r, j) => {
        s.tcp.once('error', j);
        s.tcp.listen(s.port, host, r);
      });
    } catch (err) {
      // The free UDP port's TCP twin is taken (an outgoing connection's port): let go of the UDP socket, which would
      // otherwise keep the test process alive, and pick another port unless the caller asked for this one.
      s.udp.close();
      if (opts.port === undefined && (err as NodeJS.ErrnoException).code === 'EADDRINUSE') return Stub.start(opts);
      throw err;
    }
    return s;
  }

  host = '127.0.0.1';

  get label(): string {
    return `${this.host}:${this.port}`;
  }

  count(transport?: 'udp' | 'tcp'): number {
    return transport ? this.received.filter((r) => r.transport === transport).length : this.received.length;
  }

  private later(ms: number, fn: () => void): void {
    if (ms <= 0) return fn();
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
  }

  private onQuery(msg: Buffer, transport: 'udp' | 'tcp', send: (b: Buffer) => void, fromPort = 0): void {
    this.bytesIn += msg.length;
    let q: dnsPacket.Packet;
    try {
      q = dnsPacket.decode(msg);
    } catch {
      return;
    }
    const question = q.questions?.[0];
    if (!question) return;
    this.received.push({ name: question.name, type: question.type, transport, packet: q, raw: msg });
    const o = this.opts;
    const out = (b: Buffer): void => {
      this.bytesOut += b.length;
      send(b);
    };
    this.later(o.delayFor ? o.delayFor(question.name) : (o.delayMs ?? 0), () => {
      const good = (): Buffer => this.reply(q);
      switch (o.behaviour ?? 'answer') {
        case 'drop':
          return;
        case 'answer':
          return out(good());
        case 'servfail':
        case 'refused':
        case 'notimp':
        case 'formerr': {
          // dns-packet takes the RCODE from the low bits of flags.
          const rcode = { servfail: 2, refused: 5, notimp: 4, formerr: 1 }[o.behaviour as string]!;
          return out(dnsPacket.encode({ type: 'response', id: q.id, flags: ((q.flags ?? 0) & 0x0110) | dnsPacket.RECURSION_AVAILABLE | rcode, questions: q.questions } as dnsPacket.Packet));
        }
        case 'truncate':
          if (transport === 'tcp') return out(good());
          return out(
            dnsPacket.encode({ type: 'response', id: q.id, flags: dnsPacket.TRUNCATED_RESPONSE | (q.flags ?? 0), questions: q.questions } as dnsPacket.Packet),
          );
        default: {
          // A bad reply carries an address the good one does not, so a test sees whether it got through.
          const bad = this.reply(q, SPOOFED_ADDRESS);
          switch (o.behaviour) {
            case 'wrong-id':
              bad.writeUInt16BE((q.id! + 1) & 0xffff, 0);
              break;
            case 'wrong-question': {
              // Same length, different name: flip the first letter.
              bad[13] = bad[13] === 0x7a ? 0x79 : bad[13]! + 1;
              break;
            }
            case 'qr0':
              bad[2] = bad[2]! & 0x7f;
              break;
            case 'bad-counts':
              bad.writeUInt16BE(bad.readUInt16BE(6) + 3, 6);
              break;
          }
          const payload =
            o.behaviour === 'short'
              ? bad.subarray(0, 10)
              : o.behaviour === 'garbage'
                ? Buffer.concat([bad.subarray(0, 12), Buffer.from('\xff\xfe garbage garbage garbage', 'latin1')])
                : o.behaviour === 'trailing'
                  ? Buffer.concat([bad, Buffer.from([1, 2, 3, 4])])
                  : bad;
          if (o.behaviour === 'other-port') {
            const other = dgram.createSocket('udp4');
            other.send(bad, fromPort, '127.0.0.1', () => other.close());
          } else {
            out(payload);
          }
          if (o.thenAnswerAfterMs !== undefined) this.later(o.thenAnswerAfterMs, () => out(good()));
        }
      }
    });
  }

  private reply(q: dnsPacket.Packet, address = this.opts.address ?? '192.0.2.1'): Buffer {
    const question = q.questions![0]!;
    const o = this.opts;
    const name = question.name;
    const soa: dnsPacket.Answer = {
      name: 'test',
      type: 'SOA',
      ttl: 300,
      data: { mname: 'ns.test', rname: 'admin.test', serial: 1, refresh: 60, retry: 60, expire: 600, minimum: 30 },
    };
    let rcode = 0;
    let answers: dnsPacket.Answer[] = [];
    let authorities: dnsPacket.Answer[] = [];
    const lower = name.toLowerCase();
    if (lower.startsWith('nx') || (o.zone !== undefined && lower !== o.zone && !lower.endsWith('.' + o.zone))) {
      rcode = 3;
      if (!lower.startsWith('nx-nosoa')) authorities = [soa];
    } else if (lower.startsWith('nodata')) {
      if (!lower.startsWith('nodata-nosoa')) authorities = [soa];
    } else if (o.answers) {
      answers = o.answers(name, question.type);
    } else if (question.type === 'A') {
      answers = [{ name, type: 'A', ttl: o.ttl ?? 300, data: address }];
      for (let i = 0; i < (o.bulk ?? 0); i++) answers.push({ name, type: 'A', ttl: o.ttl ?? 300, data: `198.51.100.${i % 250}` });
    } else if (question.type === 'AAAA') {
      answers = [{ name, type: 'AAAA', ttl: o.ttl ?? 300, data: '2001:db8::1' }];
    }
    const opt = q.additionals?.find((a) => a.type === 'OPT');
    const flags = rcode | dnsPacket.RECURSION_AVAILABLE | ((q.flags ?? 0) & (dnsPacket.RECURSION_DESIRED | dnsPacket.CHECKING_DISABLED));
    return dnsPacket.encode({
      type: 'response',
      id: q.id,
      flags,
      questions: q.questions,
      answers,
      authorities,
      additionals: opt ? [{ name: '.', type: 'OPT', udpPayloadSize: 1232, flags: 0 } as unknown as dnsPacket.Answer] : [],
    } as dnsPacket.Packet);
  }

  reset(): void {
    this.received = [];
    this.bytesIn = 0;
    this.bytesOut = 0;
  }

  async close(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    for (const c of this.conns) c.destroy();
    await new Promise<void>((r) => this.udp.close(() => r()));
    await new Promise<void>((r) => this.tcp.close(() => r()));
  }
}
