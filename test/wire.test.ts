// Byte-level units: addresses, the question key, the message walk, reply shaping.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dnsPacket from 'dns-packet';
import { parseEndpoint, parseCidr, cidrContains, AddressError } from '../src/net/address.js';
import { checkQuery, scanMessage, skipName } from '../src/wire/message.js';
import { questionKey } from '../src/wire/key.js';
import { matchReply } from '../src/wire/match.js';
import { shapeReply, upstreamQuery } from '../src/wire/build.js';
import { makeQuery } from './helpers/client.js';
import { takeStreamOptions, withStreamOptions } from '../src/wire/stream-options.js';

test('endpoints: ADDR, ADDR:PORT, ADDR#PORT, [V6]:PORT, bare V6', () => {
  assert.deepEqual(parseEndpoint('192.0.2.1', 53), { host: '192.0.2.1', port: 53, family: 4, label: '192.0.2.1:53' });
  assert.equal(parseEndpoint('192.0.2.1:5353', 53).port, 5353);
  assert.equal(parseEndpoint('192.0.2.1#5353', 53).port, 5353);
  assert.deepEqual(parseEndpoint('[2001:db8::1]:853', 53), { host: '2001:db8::1', port: 853, family: 6, label: '[2001:db8::1]:853' });
  assert.equal(parseEndpoint('2001:db8::1', 53).port, 53);
  assert.equal(parseEndpoint('::1#5300', 53).port, 5300);
  for (const bad of ['192.0.2.1:0', '192.0.2.1:70000', 'example.com', '1.2.3', '[::1]:x', '']) {
    assert.throws(() => parseEndpoint(bad, 53), AddressError, bad);
  }
  assert.equal(parseEndpoint('127.0.0.1:0', 53, true).port, 0);
});

test('CIDR matching, IPv4, IPv6; a v4-mapped address is IPv6 here (the listener unmaps where the kernel made it)', () => {
  assert.ok(cidrContains(parseCidr('10.1.0.0/16'), '10.1.200.3'));
  assert.ok(!cidrContains(parseCidr('10.1.0.0/16'), '10.2.0.1'));
  assert.ok(!cidrContains(parseCidr('10.1.0.0/16'), '::ffff:10.1.0.9'));
  assert.ok(cidrContains(parseCidr('2001:db8::/32'), '2001:db8:ffff::1'));
  assert.ok(!cidrContains(parseCidr('2001:db8::/32'), '2001:db9::1'));
  assert.ok(cidrContains(parseCidr('192.0.2.7'), '192.0.2.7'));
  assert.throws(() => parseCidr('10.0.0.0/33'), AddressError);
});

test('the question key folds ASCII case only and carries type, class, DO and CD', () => {
  const k = (name: string, o = {}): string => {
    const q = makeQuery(name, o);
    const v = checkQuery(q);
    assert.ok(v.ok);
    return questionKey(q, v.query);
  };
  assert.equal(k('WwW.Example.COM'), k('www.example.com'));
  assert.notEqual(k('www.example.com', { type: 'AAAA' }), k('www.example.com'));
  assert.notEqual(k('x.example', { edns: true, dnssecOk: true }), k('x.example', { edns: true }));
  assert.notEqual(k('x.example', { cd: true }), k('x.example'));
  assert.equal(k('x.example', { edns: true }), k('x.example'), 'EDNS alone does not split the key');
});

test('names: pointers only backwards, length limits', () => {
  const b = Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x61, 0, 0xc0, 12, 0xc0, 17]);
  assert.equal(skipName(b, 12, false), 15);
  assert.equal(skipName(b, 15, true), 17);
  assert.equal(skipName(b, 17, true), -1, 'pointer to itself');
  assert.equal(skipName(b, 15, false), -1, 'no pointers in a question');
  const long = Buffer.concat([Buffer.alloc(12), ...Array.from({ length: 5 }, () => Buffer.from([63, ...Buffer.alloc(63, 0x61)])), Buffer.from([0])]);
  assert.equal(skipName(long, 12, false), -1, 'over 255 octets');
});

test('scan: TTL offsets, SOA minimum, trailing bytes reported', () => {
  const reply = dnsPacket.encode({
    type: 'response',
    id: 1,
    flags: 3,
    questions: [{ name: 'nx.example', type: 'A' }],
    authorities: [{ name: 'example', type: 'SOA', ttl: 900, data: { mname: 'ns', rname: 'h', serial: 1, refresh: 1, retry: 1, expire: 1, minimum: 60 } }],
  });
  const s = scanMessage(reply, true)!;
  assert.equal(s.rcode, 3);
  assert.equal(s.soaTtl, 60);
  assert.equal(s.ttls!.length, 1);
  assert.equal(reply.readUInt32BE(s.ttls![0]!), 900);
  assert.equal(s.end, reply.length);
  assert.equal(scanMessage(Buffer.concat([reply, Buffer.from([0])]), false)!.end, reply.length);
});

test('match: type and class compared exactly, the name without case', () => {
  const q = makeQuery('m.example', { type: 'A' });
  const pq = checkQuery(q);
  assert.ok(pq.ok);
  const up = upstreamQuery(q, pq.query, 77, 1232);
  const mk = (name: string, type: dnsPacket.RecordType): Buffer =>
    dnsPacket.encode({ type: 'response', id: 77, questions: [{ name, type }], answers: [] });
  assert.equal(typeof matchReply(mk('M.EXAMPLE', 'A'), up, pq.query.question.end, false), 'object');
  assert.equal(matchReply(mk('m.example', 'AAAA'), up, pq.query.question.end, false), 'question');
  assert.equal(matchReply(mk('n.example', 'A'), up, pq.query.question.end, false), 'question');
});

test('shape: OPT stripped for a client without EDNS, TTLs counted down, TC when too big', () => {
  const q = makeQuery('Shape.Example', { id: 0xbeef });
  const v = checkQuery(q);
  assert.ok(v.ok);
  const reply = dnsPacket.encode({
    type: 'response',
    id: 1,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ name: 'shape.example', type: 'A' }],
    answers: [{ name: 'shape.example', type: 'A', ttl: 100, data: '192.0.2.1' }],
    additionals: [{ name: '.', type: 'OPT', udpPayloadSize: 1232 } as unknown as dnsPacket.Answer],
  });
  const s = scanMessage(reply, true)!;
  const out = shapeReply(reply, s, q, v.query, 512, 30);
  const p = dnsPacket.decode(out);
  assert.equal(p.id, 0xbeef);
  assert.equal(p.questions![0]!.name, 'Shape.Example');
  assert.equal(p.additionals!.length, 0);
  assert.equal((p.answers![0] as { ttl?: number }).ttl, 70);
  const tiny = shapeReply(reply, s, q, v.query, 40, 0);
  assert.equal(tiny.readUInt16BE(2) & 0x0200, 0x0200);
  assert.equal(tiny.readUInt16BE(6), 0);
});

test('rotate: runs of same-owner A records with pointer owners move, others stay', async () => {
  const { rotateAnswers } = await import('../src/wire/rotate.js');
  const q = makeQuery('rot.example');
  const v = checkQuery(q);
  assert.ok(v.ok);
  const { localAnswer } = await import('../src/wire/build.js');
  const reply = localAnswer(q, v.query, [Buffer.from([1, 1, 1, 1]), Buffer.from([2, 2, 2, 2]), Buffer.from([3, 3, 3, 3])], 60, 1232);
  rotateAnswers(reply, v.query.question.end, 1);
  const order = (dnsPacket.decode(reply).answers ?? []).map((a) => (a as { data: string }).data);
  assert.deepEqual(order, ['2.2.2.2', '3.3.3.3', '1.1.1.1']);
  const plain = dnsPacket.encode({
    type: 'response',
    id: 1,
    questions: [{ name: 'rot.example', type: 'A' }],
    answers: [
      { name: 'rot.example', type: 'A', data: '1.1.1.1' },
      { name: 'rot.example', type: 'A', data: '2.2.2.2' },
    ],
  });
  const before = Buffer.from(plain);
  rotateAnswers(plain, v.query.question.end, 1);
  assert.deepEqual(plain, before, 'uncompressed owners might be pointed at: left alone');
});

test('stream options: keepalive on every stream query, padding to 128-byte blocks over TLS', () => {
  for (const name of ['a.example', 'a-much-longer-name.with.several.labels.example', 'x'.repeat(60) + '.example']) {
    const v = checkQuery(makeQuery(name, { edns: true }));
    assert.ok(v.ok);
    const up = upstreamQuery(makeQuery(name, { edns: true }), v.query, 9, 1232);
    const tcp = withStreamOptions(up, false);
    assert.equal(tcp.length, up.length + 4);
    const tlsQ = withStreamOptions(up, true);
    assert.equal(tlsQ.length % 128, 0, `${name}: ${tlsQ.length} bytes`);
    for (const [buf, codes] of [
      [tcp, [11]],
      [tlsQ, [11, 12]],
    ] as const) {
      const opt = dnsPacket.decode(buf).additionals!.find((a) => a.type === 'OPT') as unknown as { options: { code: number }[] };
      assert.deepEqual(
        opt.options.map((o) => o.code),
        codes,
      );
    }
  }
  // A query without OPT (the health probe) goes as it is.
  const bare = Buffer.from([0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 1]);
  assert.equal(withStreamOptions(bare, true), bare);
});

test('stream options: keepalive read, keepalive and padding stripped from a reply, other options and later records kept', () => {
  const reply = dnsPacket.encode({
    type: 'response',
    id: 5,
    flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE,
    questions: [{ name: 'k.example', type: 'A', class: 'IN' }],
    answers: [{ name: 'k.example', type: 'A', ttl: 300, data: '192.0.2.9' }],
    additionals: [
      {
        name: '.',
        type: 'OPT',
        udpPayloadSize: 1232,
        flags: 0,
        options: [
          { code: 11, data: Buffer.from([0, 50]) },
          { code: 10, data: Buffer.alloc(8, 7) },
          { code: 12, data: Buffer.alloc(100) },
        ],
      } as unknown as dnsPacket.Answer,
      { name: 'ns.example', type: 'A', ttl: 77, data: '192.0.2.10' },
    ],
  } as dnsPacket.Packet);
  const scan = scanMessage(reply, true)!;
  const r = takeStreamOptions(reply, scan);
  assert.equal(r.keepalive, 50);
  assert.equal(r.msg.length, reply.length - 6 - 104);
  assert.equal(r.scan.end, r.msg.length);
  const d = dnsPacket.decode(r.msg);
  const opt = d.additionals!.find((a) => a.type === 'OPT') as unknown as { options: { code: number }[] };
  assert.deepEqual(
    opt.options.map((o) => o.code),
    [10],
  );
  assert.equal((d.additionals!.find((a) => a.type === 'A') as dnsPacket.Answer & { data: string }).data, '192.0.2.10');
  assert.deepEqual(
    r.scan.ttls!.map((t) => r.msg.readUInt32BE(t)),
    [300, 77],
  );
  assert.deepEqual(r.scan, scanMessage(r.msg, true));
  // Nothing to take: the same buffer back.
  const plain = dnsPacket.encode({ type: 'response', id: 1, questions: [{ name: 'p.example', type: 'A', class: 'IN' }] } as dnsPacket.Packet);
  assert.equal(takeStreamOptions(plain, scanMessage(plain, true)!).msg, plain);
});
