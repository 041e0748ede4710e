// Property tests of the wire parser against dns-packet as the oracle: any
// query dns-packet encodes, checkQuery reads the same way; any response it
// encodes, scanMessage walks to the same counts, RCODE and TTLs; and no byte
// string at all makes either throw.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import dnsPacket from 'dns-packet';
import { checkQuery, scanMessage, nameToText } from '../src/wire/message.js';

const label = fc.stringMatching(/^[a-zA-Z0-9-]{1,20}$/);
const name = fc.array(label, { minLength: 1, maxLength: 5 }).map((ls) => ls.join('.'));
const qtype = fc.constantFrom('A', 'AAAA', 'MX', 'TXT', 'NS', 'SOA', 'PTR', 'SRV', 'CNAME');

const query = fc.record({
  id: fc.integer({ min: 0, max: 65535 }),
  name,
  type: qtype,
  rd: fc.boolean(),
  cd: fc.boolean(),
  edns: fc.option(fc.record({ size: fc.integer({ min: 0, max: 65535 }), dnssecOk: fc.boolean() }), { nil: undefined }),
});

test('checkQuery reads every query dns-packet encodes as dns-packet decodes it', () => {
  fc.assert(
    fc.property(query, (q) => {
      const buf = dnsPacket.encode({
        type: 'query',
        id: q.id,
        flags: (q.rd ? dnsPacket.RECURSION_DESIRED : 0) | (q.cd ? dnsPacket.CHECKING_DISABLED : 0),
        questions: [{ name: q.name, type: q.type, class: 'IN' }],
        additionals: q.edns
          ? [{ name: '.', type: 'OPT', udpPayloadSize: q.edns.size, flags: q.edns.dnssecOk ? dnsPacket.DNSSEC_OK : 0 } as unknown as dnsPacket.Answer]
          : [],
      } as dnsPacket.Packet);
      const oracle = dnsPacket.decode(buf);
      const v = checkQuery(buf);
      assert.ok(v.ok, `rejected ${buf.toString('hex')}`);
      const pq = v.query;
      assert.equal(pq.id, oracle.id);
      assert.equal(pq.rd, q.rd);
      assert.equal(pq.cd, q.cd);
      assert.equal(pq.question.qtype, buf.readUInt16BE(pq.question.nameEnd));
      assert.equal(pq.question.qclass, 1);
      assert.equal(nameToText(buf), oracle.questions![0]!.name + '.');
      assert.equal(pq.edns, q.edns !== undefined);
      if (q.edns) {
        // The oracle's own reading (dns-packet writes a size of 0 as 4096).
        assert.equal(pq.ednsUdpSize, (oracle.additionals![0] as unknown as { udpPayloadSize: number }).udpPayloadSize);
        assert.equal(pq.ednsDo, q.edns.dnssecOk);
      }
    }),
    { numRuns: 500 },
  );
});

const record = fc.record({
  name,
  ttl: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
  kind: fc.constantFrom('A', 'AAAA', 'CNAME', 'TXT'),
  ip4: fc.ipV4(),
  ip6: fc.ipV6(),
  text: fc.string({ maxLength: 40 }),
});

function toAnswer(r: { name: string; ttl: number; kind: string; ip4: string; ip6: string; text: string }): dnsPacket.Answer {
  switch (r.kind) {
    case 'A':
      return { name: r.name, type: 'A', ttl: r.ttl, data: r.ip4 };
    case 'AAAA':
      return { name: r.name, type: 'AAAA', ttl: r.ttl, data: r.ip6 };
    case 'CNAME':
      return { name: r.name, type: 'CNAME', ttl: r.ttl, data: r.name + '.alias' };
    default:
      return { name: r.name, type: 'TXT', ttl: r.ttl, data: r.text };
  }
}

test('scanMessage walks every response dns-packet encodes to the same counts, RCODE and smallest TTL', () => {
  fc.assert(
    fc.property(
      name,
      fc.integer({ min: 0, max: 5 }),
      fc.array(record, { maxLength: 6 }),
      fc.array(record, { maxLength: 3 }),
      fc.boolean(),
      (qname, rcode, answers, authorities, edns) => {
        const buf = dnsPacket.encode({
          type: 'response',
          id: 1,
          flags: rcode,
          questions: [{ name: qname, type: 'A', class: 'IN' }],
          answers: answers.map(toAnswer),
          authorities: authorities.map(toAnswer),
          additionals: edns ? [{ name: '.', type: 'OPT', udpPayloadSize: 1232, flags: 0 } as unknown as dnsPacket.Answer] : [],
        } as dnsPacket.Packet);
        const scan = scanMessage(buf, true);
        assert.ok(scan, `rejected ${buf.toString('hex')}`);
        assert.equal(scan.ancount, answers.length);
        assert.equal(scan.nscount, authorities.length);
        assert.equal(scan.arcount, edns ? 1 : 0);
        assert.equal(scan.rcode, rcode);
        assert.equal(scan.opt >= 0, edns);
        assert.equal(scan.end, buf.length);
        const ttls = [...answers, ...authorities].map((r) => r.ttl);
        assert.equal(scan.minTtl, ttls.length ? Math.min(...ttls) : -1);
        assert.equal(scan.ttls!.length, ttls.length);
      },
    ),
    { numRuns: 300 },
  );
});

test('no byte string makes checkQuery or scanMessage throw; a truncated message never scans', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
      const buf = Buffer.from(bytes);
      checkQuery(buf);
      scanMessage(buf, true);
    }),
    { numRuns: 3000 },
  );
  fc.assert(
    fc.property(name, fc.array(record, { minLength: 1, maxLength: 4 }), fc.nat(), (qname, answers, cut) => {
      const buf = dnsPacket.encode({ type: 'response', id: 1, questions: [{ name: qname, type: 'A', class: 'IN' }], answers: answers.map(toAnswer) } as dnsPacket.Packet);
      const at = 12 + (cut % (buf.length - 12));
      assert.equal(scanMessage(buf.subarray(0, at), false), null, `cut at ${at} of ${buf.length}`);
    }),
    { numRuns: 500 },
  );
});
