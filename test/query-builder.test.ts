// The one builder of queries raced makes itself (wire/build.ts buildQuery),
// behind the search-domain internal query and the bootstrap's A/AAAA, read
// back with dns-packet as the oracle.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as dnsPacket from 'dns-packet';
import { buildQuery, textToWire } from '../src/wire/build.js';
import { internalQuery } from '../src/wire/alias.js';
import { FLAG_RD } from '../src/wire/constants.js';
import { checkQuery } from '../src/wire/message.js';

test('buildQuery: id, flags, one question of class IN, an OPT only when asked', () => {
  const plain = dnsPacket.decode(buildQuery(textToWire('dns.example.'), 28, 0x1234, FLAG_RD));
  assert.equal(plain.id, 0x1234);
  assert.equal(plain.flags, FLAG_RD);
  assert.deepEqual(plain.questions, [{ name: 'dns.example', type: 'AAAA', class: 'IN' }]);
  assert.equal(plain.additionals?.length, 0);
  const withOpt = dnsPacket.decode(buildQuery(textToWire('a.b'), 1, 7, 0, { udpSize: 1232, do: true }));
  const opt = withOpt.additionals![0] as dnsPacket.OptAnswer;
  assert.equal(opt.type, 'OPT');
  assert.equal(opt.udpPayloadSize, 1232);
  assert.equal(opt.flags & dnsPacket.DNSSEC_OK, dnsPacket.DNSSEC_OK);
});

test('internalQuery keeps the client\'s RD, CD and DO and asks with a 65535-byte OPT', () => {
  const client = dnsPacket.encode({ type: 'query', id: 9, flags: dnsPacket.RECURSION_DESIRED | dnsPacket.CHECKING_DISABLED, questions: [{ name: 'host', type: 'A', class: 'IN' }], additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232, extendedRcode: 0, ednsVersion: 0, flags: dnsPacket.DNSSEC_OK, flag_do: true, options: [] }] });
  const v = checkQuery(client);
  assert.ok(v.ok);
  const q = dnsPacket.decode(internalQuery(textToWire('host.corp.example'), 1, v.query, 77));
  assert.equal(q.id, 77);
  assert.equal(q.flags, dnsPacket.RECURSION_DESIRED | dnsPacket.CHECKING_DISABLED);
  assert.deepEqual(q.questions, [{ name: 'host.corp.example', type: 'A', class: 'IN' }]);
  const opt = q.additionals![0] as dnsPacket.OptAnswer;
  assert.equal(opt.udpPayloadSize, 65535);
  assert.equal(opt.flags & dnsPacket.DNSSEC_OK, dnsPacket.DNSSEC_OK);
});
