// The byte-level pieces of issue 16: what a reply says (positive, NXDOMAIN,
// NODATA), the address rules, and the EDE option raced writes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dnsPacket from 'dns-packet';
import { NEG_NODATA, NEG_NXDOMAIN, POSITIVE, negativeKind, namesEqual } from '../src/wire/match.js';
import { scanMessage } from '../src/wire/message.js';
import { ADDR_BOGUS, ADDR_IGNORE, ADDR_OK, ADDR_REBIND, AddressRules, asNxdomain } from '../src/wire/filter.js';
import { addEde, EDE } from '../src/wire/ede.js';
import { errorReply } from '../src/wire/build.js';
import { readQuestion } from '../src/wire/message.js';
import { parseCidr } from '../src/net/address.js';
import { makeQuery, decode } from './helpers/client.js';

function reply(name: string, type: string, answers: dnsPacket.Answer[], rcode = 0, opt = true): Buffer {
  return dnsPacket.encode({
    type: 'response',
    id: 1,
    flags: 0x8180 | rcode,
    questions: [{ name, type, class: 'IN' }],
    answers,
    additionals: opt ? [{ name: '.', type: 'OPT', udpPayloadSize: 1232, flags: 0 } as unknown as dnsPacket.Answer] : [],
  } as dnsPacket.Packet);
}
const scan = (b: Buffer) => scanMessage(b, false)!;
const A = 1;
const AAAA = 28;

/** `reply` with the first answer's owner replaced by a pointer to the question (as real servers send it). */
function compressed(name: string, type: number, rdata: number[]): Buffer {
  const q = makeQuery(name, { type: type === A ? 'A' : 'AAAA' });
  const head = Buffer.from(q.subarray(0, q.length));
  head[2] = 0x81;
  head[3] = 0x80;
  head.writeUInt16BE(1, 6);
  const rr = Buffer.from([0xc0, 12, type >> 8, type & 255, 0, 1, 0, 0, 0, 60, 0, rdata.length, ...rdata]);
  return Buffer.concat([head, rr]);
}

test('negativeKind: positive, NXDOMAIN, NODATA, CNAME chains, compression, case', () => {
  const pos = reply('a.example', 'A', [{ name: 'a.example', type: 'A', ttl: 60, data: '192.0.2.1' }]);
  assert.equal(negativeKind(pos, scan(pos), A), POSITIVE);
  const comp = compressed('a.example', A, [192, 0, 2, 1]);
  assert.equal(negativeKind(comp, scan(comp), A), POSITIVE);
  const nx = reply('a.example', 'A', [], 3);
  assert.equal(negativeKind(nx, scan(nx), A), NEG_NXDOMAIN);
  const empty = reply('a.example', 'AAAA', []);
  assert.equal(negativeKind(empty, scan(empty), AAAA), NEG_NODATA);
  // Records of another type, or of the asked type at another name: NODATA.
  const other = reply('a.example', 'AAAA', [{ name: 'a.example', type: 'TXT', ttl: 60, data: 'x' }, { name: 'b.example', type: 'AAAA', ttl: 60, data: '2001:db8::1' }]);
  assert.equal(negativeKind(other, scan(other), AAAA), NEG_NODATA);
  const chain = reply('www.example', 'A', [
    { name: 'www.example', type: 'CNAME', ttl: 60, data: 'mid.example' },
    { name: 'mid.example', type: 'CNAME', ttl: 60, data: 'end.example' },
    { name: 'END.example', type: 'A', ttl: 60, data: '192.0.2.2' },
  ]);
  assert.equal(negativeKind(chain, scan(chain), A), POSITIVE, 'the end of the chain, compared case-insensitively');
  const dangling = reply('www.example', 'A', [{ name: 'www.example', type: 'CNAME', ttl: 60, data: 'end.example' }]);
  assert.equal(negativeKind(dangling, scan(dangling), A), NEG_NODATA);
  assert.equal(negativeKind(dangling, scan(dangling), 5), POSITIVE, 'a CNAME query answered by the CNAME');
  const loop = reply('x.example', 'A', [
    { name: 'x.example', type: 'CNAME', ttl: 60, data: 'y.example' },
    { name: 'y.example', type: 'CNAME', ttl: 60, data: 'x.example' },
  ]);
  assert.ok([POSITIVE, NEG_NODATA].includes(negativeKind(loop, scan(loop), A)), 'a CNAME loop ends');
  const any = reply('a.example', 'ANY', [{ name: 'a.example', type: 'TXT', ttl: 60, data: 'x' }]);
  assert.equal(negativeKind(any, scan(any), 255), POSITIVE);
});

test('namesEqual follows pointers and stops on bad ones', () => {
  const b = compressed('a.example', A, [192, 0, 2, 1]);
  const owner = b.length - 16; // the answer record: 12 bytes of fixed fields and 4 of rdata
  assert.ok(namesEqual(b, owner, 12));
  const bad = Buffer.from(b);
  bad[owner + 1] = 0xff; // a pointer past the end
  assert.equal(namesEqual(bad, owner, 12), false);
  const selfLoop = Buffer.from(b);
  selfLoop[owner] = 0xc0 | (owner >> 8);
  selfLoop[owner + 1] = owner & 0xff;
  assert.equal(namesEqual(selfLoop, owner, 12), false);
});

test('address rules: ignore beats bogus beats rebind; CIDRs for IPv4 and IPv6; private ranges; domain exceptions', () => {
  const rules = new AddressRules({
    ignore: [parseCidr('0.0.0.0'), parseCidr('::')],
    bogus: [parseCidr('198.51.100.0/24'), parseCidr('2001:db8:bad::/48')],
    stopRebind: true,
    rebindLocalhostOk: false,
    rebindDomainOk: ['home.arpa'],
  });
  const v = (name: string, type: 'A' | 'AAAA', ...data: string[]): number => {
    const b = reply(name, type, data.map((d) => ({ name, type, ttl: 60, data: d })));
    return rules.check(b, scan(b));
  };
  assert.equal(v('a.example', 'A', '192.0.2.1'), ADDR_OK);
  assert.equal(v('a.example', 'A', '0.0.0.0'), ADDR_IGNORE);
  assert.equal(v('a.example', 'AAAA', '::'), ADDR_IGNORE);
  assert.equal(v('a.example', 'A', '198.51.100.77'), ADDR_BOGUS);
  assert.equal(v('a.example', 'AAAA', '2001:db8:bad::1'), ADDR_BOGUS);
  assert.equal(v('a.example', 'AAAA', '2001:db8:bae::1'), ADDR_OK);
  assert.equal(v('a.example', 'A', '10.0.0.1', '0.0.0.0'), ADDR_IGNORE, 'ignore wins whatever the order');
  assert.equal(v('a.example', 'A', '10.0.0.1', '198.51.100.1'), ADDR_BOGUS);
  for (const a of ['10.1.2.3', '127.0.0.1', '169.254.1.1', '172.16.0.1', '172.31.255.255', '192.168.0.1', '0.1.2.3']) assert.equal(v('a.example', 'A', a), ADDR_REBIND, a);
  for (const a of ['172.32.0.1', '192.169.0.1', '11.0.0.1', '100.64.0.1']) assert.equal(v('a.example', 'A', a), ADDR_OK, a);
  for (const a of ['::1', 'fe80::1', 'fd12::1', 'fc00::1', '::ffff:192.168.1.1']) assert.equal(v('a.example', 'AAAA', a), ADDR_REBIND, a);
  for (const a of ['2001:db8::1', '::ffff:8.8.8.8', 'fec0::1']) assert.equal(v('a.example', 'AAAA', a), ADDR_OK, a);
  assert.equal(v('nas.home.arpa', 'A', '192.168.1.2'), ADDR_OK, '--rebind-domain-ok');
  assert.equal(v('HOME.ARPA', 'A', '192.168.1.2'), ADDR_OK, 'the domain itself, any case');
  assert.equal(v('nothome.arpa', 'A', '192.168.1.2'), ADDR_REBIND, 'label boundaries, not string suffixes');
  const lo = new AddressRules({ ignore: [], bogus: [], stopRebind: true, rebindLocalhostOk: true, rebindDomainOk: [] });
  const b = reply('l.example', 'A', [{ name: 'l.example', type: 'A', ttl: 60, data: '127.0.0.1' }]);
  assert.equal(lo.check(b, scan(b)), ADDR_OK);
  assert.equal(AddressRules.from({ ignore: [], bogus: [], stopRebind: false, rebindLocalhostOk: false, rebindDomainOk: [] }), null, 'nothing to check: no rules object');
});

test('asNxdomain keeps header, question and the upstream OPT, drops the records', () => {
  const b = reply('typo.example', 'A', [{ name: 'typo.example', type: 'A', ttl: 60, data: '198.51.100.9' }]);
  const nx = decode(asNxdomain(b, scan(b)));
  assert.equal(nx.rcode, 'NXDOMAIN');
  assert.equal(nx.answers!.length, 0);
  assert.equal(nx.questions![0]!.name, 'typo.example');
  assert.equal(nx.additionals!.filter((a) => a.type === 'OPT').length, 1);
});

const edeOf = (b: Buffer): { code: number; text: string }[] => {
  const p = dnsPacket.decode(b);
  const opt = p.additionals!.find((a) => a.type === 'OPT') as unknown as { options: { code: number; data: Buffer }[] } | undefined;
  return (opt?.options ?? []).filter((o) => o.code === 15).map((o) => ({ code: o.data.readUInt16BE(0), text: o.data.subarray(2).toString() }));
};

test('EDE: errorReply carries it only with EDNS; addEde extends an OPT, adds one, or gives up when it would not fit', () => {
  const q = makeQuery('e.example', { edns: true });
  const question = readQuestion(q);
  assert.deepEqual(edeOf(errorReply(q, question, 2, true, 1232, EDE.NO_REACHABLE_AUTHORITY)), [{ code: 22, text: 'no upstream answered in time' }]);
  assert.equal(dnsPacket.decode(errorReply(q, question, 2, false, 1232, EDE.NETWORK_ERROR)).additionals!.length, 0);
  assert.deepEqual(edeOf(errorReply(q, question, 2, true, 1232)), []);
  const withOpt = reply('e.example', 'A', [{ name: 'e.example', type: 'A', ttl: 30, data: '192.0.2.3' }]);
  const stale = addEde(withOpt, EDE.STALE_ANSWER, 1232, 1232);
  assert.deepEqual(edeOf(stale), [{ code: 3, text: 'stale answer' }]);
  assert.equal((dnsPacket.decode(stale).answers![0] as { data: string }).data, '192.0.2.3');
  const noOpt = reply('e.example', 'A', [], 3, false);
  assert.deepEqual(edeOf(addEde(noOpt, EDE.STALE_NXDOMAIN, 1232, 1232)), [{ code: 19, text: 'stale NXDOMAIN' }]);
  assert.equal(addEde(withOpt, EDE.STALE_ANSWER, withOpt.length + 3, 1232), withOpt, 'would not fit: unchanged');
});

test('negativeKind: a huge answer section costs bounded work and is never held', () => {
  const answers: dnsPacket.Answer[] = [];
  for (let i = 0; i < 2000; i++) answers.push({ name: `n${i}.example`, type: 'CNAME', ttl: 60, data: `m${i}.example` });
  const big = reply('q.example', 'A', answers);
  const t0 = performance.now();
  assert.equal(negativeKind(big, scan(big), A), POSITIVE);
  assert.ok(performance.now() - t0 < 50);
});
