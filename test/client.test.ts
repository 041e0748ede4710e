// The client side: query checks, EDNS, truncation, TCP (RFC 7766), access
// control and the in-flight cap, over real sockets.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import dgram from 'node:dgram';
import dnsPacket from 'dns-packet';
import { Stub } from './helpers/stub.js';
import { startRaced, udpQuery, udpRaw, makeQuery, tcpExchange, decode, firstData, sleep, type Running } from './helpers/client.js';
import { parseCidr } from '../src/net/address.js';
import { frame } from '../src/net/framing.js';

let up: Stub;
let r: Running;
before(async () => {
  up = await Stub.start({ address: '192.0.2.1', bulk: 60 });
  r = await startRaced([up.label]);
});
after(async () => {
  await r.close();
  await up.close();
});

function header(buf: Buffer): { id: number; qr: boolean; opcode: number; rd: boolean; tc: boolean; rcode: number; qd: number; an: number; ar: number } {
  const f = buf.readUInt16BE(2);
  return {
    id: buf.readUInt16BE(0),
    qr: (f & 0x8000) !== 0,
    opcode: (f >> 11) & 0xf,
    rd: (f & 0x0100) !== 0,
    tc: (f & 0x0200) !== 0,
    rcode: f & 0xf,
    qd: buf.readUInt16BE(4),
    an: buf.readUInt16BE(6),
    ar: buf.readUInt16BE(10),
  };
}

test('QR=1 in a query is dropped (no loops)', async () => {
  const q = makeQuery('loop.example');
  q[2] = q[2]! | 0x80;
  assert.equal(await udpRaw(r.port, q, 300), null);
});

test('shorter than a header: dropped, and raced keeps answering', async () => {
  assert.equal(await udpRaw(r.port, Buffer.from([1, 2, 3]), 300), null);
  const { packet } = await udpQuery(r.port, 'after-short.example');
  assert.equal(packet.rcode, 'NOERROR');
});

test('no question or two questions: FORMERR', async () => {
  const none = Buffer.alloc(12);
  none.writeUInt16BE(0x1234, 0);
  none.writeUInt16BE(0x0100, 2);
  const reply = (await udpRaw(r.port, none))!;
  assert.equal(header(reply).rcode, 1);
  assert.equal(header(reply).id, 0x1234);
  const two = dnsPacket.encode({ type: 'query', id: 7, questions: [{ name: 'a.example', type: 'A' }, { name: 'b.example', type: 'A' }] });
  assert.equal(header((await udpRaw(r.port, two))!).rcode, 1);
});

test('opcode other than QUERY: NOTIMP with the opcode echoed', async () => {
  const q = makeQuery('notify.example', { id: 99 });
  q[2] = (q[2]! & 0x87) | (4 << 3); // NOTIFY
  const h = header((await udpRaw(r.port, q))!);
  assert.equal(h.rcode, 4);
  assert.equal(h.opcode, 4);
  assert.equal(h.id, 99);
  assert.ok(h.qr);
});

test('malformed question or records: FORMERR, never a crash', async () => {
  const q = makeQuery('bad.example');
  const cut = q.subarray(0, q.length - 3);
  assert.equal(header((await udpRaw(r.port, cut))!).rcode, 1);
  const lying = makeQuery('lying.example');
  lying.writeUInt16BE(5, 10); // claims five additional records
  assert.equal(header((await udpRaw(r.port, lying))!).rcode, 1);
  // A compression pointer loop in the question.
  const loop = Buffer.from([0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1]);
  assert.equal(header((await udpRaw(r.port, loop))!).rcode, 1);
  const { packet } = await udpQuery(r.port, 'still-alive.example');
  assert.equal(packet.rcode, 'NOERROR');
});

test('two OPT records: FORMERR; EDNS version 1: BADVERS with an OPT', async () => {
  const q = dnsPacket.encode({
    type: 'query',
    id: 5,
    questions: [{ name: 'opt2.example', type: 'A' }],
    additionals: [
      { name: '.', type: 'OPT', udpPayloadSize: 1232 } as unknown as dnsPacket.Answer,
      { name: '.', type: 'OPT', udpPayloadSize: 1232 } as unknown as dnsPacket.Answer,
    ],
  });
  assert.equal(header((await udpRaw(r.port, q))!).rcode, 1);
  const v1 = makeQuery('badvers.example', { edns: true });
  v1[v1.length - 5] = 1; // OPT TTL: version byte
  const reply = (await udpRaw(r.port, v1))!;
  const p = decode(reply);
  const opt = p.additionals?.find((a) => a.type === 'OPT') as { extendedRcode?: number } | undefined;
  assert.ok(opt, 'BADVERS carries an OPT');
  assert.equal(opt.extendedRcode, 1); // 16 = 1 << 4 | 0
  assert.equal(header(reply).rcode, 0);
});

test('no OPT in the query: none in the reply; with OPT: one; RD echoed', async () => {
  const plain = await udpQuery(r.port, 'noopt.example', { type: 'AAAA' });
  assert.equal(plain.packet.additionals?.length ?? 0, 0);
  const edns = await udpQuery(r.port, 'opt.example', { type: 'AAAA', edns: true });
  assert.equal(edns.packet.additionals?.filter((a) => a.type === 'OPT').length, 1);
  const nord = await udpQuery(r.port, 'nord.example', { type: 'AAAA', rd: false });
  assert.equal(header(nord.raw).rd, false);
  const rd = await udpQuery(r.port, 'rd.example', { type: 'AAAA' });
  assert.equal(header(rd.raw).rd, true);
});

test('the client EDNS options are not sent upstream (raced sends its own clean OPT)', async () => {
  up.reset();
  const q = dnsPacket.encode({
    type: 'query',
    id: 6,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ name: 'cookie.example', type: 'AAAA' }],
    additionals: [{ name: '.', type: 'OPT', udpPayloadSize: 4096, options: [{ code: 10, data: Buffer.alloc(8, 7) }] } as unknown as dnsPacket.Answer],
  });
  const reply = decode((await udpRaw(r.port, q))!);
  assert.equal(reply.rcode, 'NOERROR');
  const sent = up.received[0]!.packet.additionals!.find((a) => a.type === 'OPT') as { options?: unknown[]; udpPayloadSize?: number };
  assert.equal(sent.options?.length ?? 0, 0);
  assert.equal(sent.udpPayloadSize, 1232);
});

test('a reply too big for a 512-byte client gets TC=1; over TCP it comes whole', async () => {
  const udp = await udpQuery(r.port, 'big.example');
  const h = header(udp.raw);
  assert.ok(h.tc, 'TC set');
  assert.equal(h.an, 0);
  assert.ok(udp.raw.length <= 512);
  const [whole] = await tcpExchange(r.port, [makeQuery('big.example')], 1);
  const p = decode(whole!);
  assert.equal(p.answers?.length, 61);
  assert.ok(whole!.length > 512);
  // With EDNS 4096 the cap (1232) applies.
  const capped = await udpQuery(r.port, 'big.example', { edns: 4096 });
  assert.ok(capped.raw.length <= 1232);
});

test('TCP: several queries on one connection, pipelined, byte at a time', async () => {
  const msgs = ['t1.example', 't2.example', 't3.example'].map((n, i) => makeQuery(n, { id: 500 + i, type: 'AAAA' }));
  const replies = await tcpExchange(r.port, msgs, 3, 5000, true);
  const ids = replies.map((b) => b.readUInt16BE(0)).sort();
  assert.deepEqual(ids, [500, 501, 502]);
});

test('TCP: replies come back out of order when upstream answers do', async () => {
  const slow = await Stub.start({ delayMs: 200 });
  const fast = await Stub.start();
  const rr = await startRaced([slow.label], { strategy: 'all' });
  try {
    // The first query meets a 200 ms upstream; the second, sent after the
    // upstream sped up, must come back first on the same connection.
    const sock = net.connect(rr.port, '127.0.0.1');
    await new Promise((res) => sock.on('connect', res));
    sock.on('error', () => {});
    const got: number[] = [];
    sock.on('data', (c: Buffer) => {
      let off = 0;
      while (off + 2 <= c.length) {
        const len = c.readUInt16BE(off);
        got.push(c.readUInt16BE(off + 2));
        off += 2 + len;
      }
    });
    sock.write(frame(makeQuery('first.example', { id: 1, type: 'AAAA' })));
    await sleep(20);
    slow.opts.delayMs = 0;
    sock.write(frame(makeQuery('second.example', { id: 2, type: 'AAAA' })));
    await sleep(400);
    sock.destroy();
    assert.deepEqual(got, [2, 1]);
  } finally {
    await rr.close();
    await slow.close();
    await fast.close();
  }
});

test('TCP: a half-sent query does not pin the connection past the idle timeout', async () => {
  const rr = await startRaced([up.label], { tcpIdleMs: 300 });
  try {
    const sock = net.connect(rr.port, '127.0.0.1');
    await new Promise((res) => sock.on('connect', res));
    const t0 = Date.now();
    const closed = new Promise<number>((res) => sock.on('close', () => res(Date.now() - t0)));
    // raced closes a connection with unread bytes in it: the kernel sends a reset, which is fine here.
    sock.on('error', () => {});
    // Two bytes of length and a trickle that never completes the message.
    sock.write(Buffer.from([0, 40, 1]));
    const trickle = setInterval(() => !sock.destroyed && sock.write(Buffer.from([1])), 50);
    const took = await closed;
    clearInterval(trickle);
    assert.ok(took >= 250 && took < 1500, `closed after ${took} ms`);
  } finally {
    await rr.close();
  }
});

test('TCP: at the cap the longest-idle connection is closed to admit a new one', async () => {
  const rr = await startRaced([up.label], { maxTcpConnections: 2 });
  try {
    const open = async (): Promise<net.Socket> => {
      const s = net.connect(rr.port, '127.0.0.1');
      await new Promise((res) => s.on('connect', res));
      return s;
    };
    const closed = (s: net.Socket): Promise<boolean> =>
      new Promise<boolean>((res) => {
        if (s.destroyed) return res(true);
        s.on('close', () => res(true));
        setTimeout(() => res(false), 1000);
      });
    const a = await open();
    await sleep(20);
    const b = await open();
    const c = await open();
    assert.ok(await closed(a), 'the longest-idle connection was closed by raced');
    const [reply] = await new Promise<Buffer[]>((res, rej) => {
      const t = setTimeout(() => rej(new Error('no reply on the admitted connection')), 3000);
      c.on('data', (d: Buffer) => {
        clearTimeout(t);
        res([d]);
      });
      c.on('error', rej);
      c.write(frame(makeQuery('capped.example', { type: 'AAAA' })));
    });
    assert.ok(reply!.length > 12);
    assert.equal(b.destroyed, false);
    b.destroy();
    c.destroy();
  } finally {
    await rr.close();
  }
});

test('clients outside loopback and --allow get REFUSED; allowed ones are answered', async () => {
  const rr = await startRaced([up.label]);
  const pipeline = rr.raced.pipeline;
  const ask = (address: string): Promise<number> =>
    new Promise((res) => pipeline.handle(makeQuery('acl.example', { type: 'AAAA' }), { transport: 'udp', address, port: 5555, respond: (b) => res(header(b).rcode) }));
  try {
    assert.equal(await ask('203.0.113.9'), 5);
    assert.equal(await ask('127.0.0.5'), 0);
    assert.equal(await ask('::1'), 0);
  } finally {
    await rr.close();
  }
  const allowed = await startRaced([up.label], { allow: [parseCidr('203.0.113.0/24')] });
  try {
    const res = await new Promise<number>((ok) =>
      allowed.raced.pipeline.handle(makeQuery('acl.example', { type: 'AAAA' }), { transport: 'udp', address: '203.0.113.9', port: 1, respond: (b) => ok(header(b).rcode) }),
    );
    assert.equal(res, 0);
  } finally {
    await allowed.close();
  }
});

test('--dns-forward-max: queries beyond the cap get REFUSED, not a queue', async () => {
  const slow = await Stub.start({ delayMs: 300 });
  const rr = await startRaced([slow.label], { forwardMax: 2 });
  try {
    const replies = await Promise.all([0, 1, 2, 3].map((i) => udpQuery(rr.port, `cap${i}.example`)));
    const codes = replies.map((x) => x.packet.rcode).sort();
    assert.deepEqual(codes, ['NOERROR', 'NOERROR', 'REFUSED', 'REFUSED']);
  } finally {
    await rr.close();
    await slow.close();
  }
});

test('the answer carries the client spelling of the name (0x20)', async () => {
  const { packet } = await udpQuery(r.port, 'MiXeD.ExAmPlE', { type: 'AAAA' });
  assert.equal(packet.questions![0]!.name, 'MiXeD.ExAmPlE');
  assert.equal(firstData(packet, 'AAAA'), '2001:db8::1');
});

test('IPv6: --listen [::1]:PORT answers over UDP and TCP', async () => {
  const { parseEndpoint } = await import('../src/net/address.js');
  const rr = await startRaced([up.label], { listen: [parseEndpoint('[::1]:0', 53, true)] });
  try {
    const port = rr.raced.bound[0]!.port;
    assert.equal(rr.raced.bound[0]!.label, `[::1]:${port}`);
    const reply = await new Promise<Buffer>((resolve, reject) => {
      const s = dgram.createSocket('udp6');
      const t = setTimeout(() => reject(new Error('no reply over IPv6')), 3000);
      s.on('message', (m) => {
        clearTimeout(t);
        s.close();
        resolve(m);
      });
      s.send(makeQuery('v6.example', { type: 'AAAA' }), port, '::1');
    });
    assert.equal(firstData(decode(reply), 'AAAA'), '2001:db8::1');
    const tcpReply = await new Promise<Buffer>((resolve, reject) => {
      const sock = net.connect(port, '::1');
      sock.on('error', reject);
      sock.on('connect', () => sock.write(frame(makeQuery('v6tcp.example', { type: 'AAAA' }))));
      sock.on('data', (d: Buffer) => {
        sock.destroy();
        resolve(d.subarray(2));
      });
    });
    assert.equal(firstData(decode(tcpReply), 'AAAA'), '2001:db8::1');
  } finally {
    await rr.close();
  }
});
