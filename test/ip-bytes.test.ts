// The one text-to-bytes IP parser (net/address.ts ipBytes), now also behind
// hosts-file records and reverse names.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ipBytes } from '../src/net/address.js';
import { emptyTable, lookupHosts, parseHosts, reverseName } from '../src/hosts/hosts.js';

const CASES: [string, string][] = [
  ['192.0.2.1', 'c0000201'],
  ['::1', '00000000000000000000000000000001'],
  ['::', '00000000000000000000000000000000'],
  ['2001:db8::1', '20010db8000000000000000000000001'],
  ['2001:DB8:0:0:8:800:200C:417A', '20010db80000000000080800200c417a'],
  ['fe80::1%eth0', 'fe800000000000000000000000000001'],
  ['::ffff:192.0.2.1', '00000000000000000000ffffc0000201'],
  ['64:ff9b::192.0.2.33', '0064ff9b0000000000000000c0000221'],
  ['1::', '00010000000000000000000000000000'],
];

test('ipBytes: every textual form Node accepts, in network order', () => {
  for (const [text, hex] of CASES) assert.equal(Buffer.from(ipBytes(text)!.bytes).toString('hex'), hex, text);
  assert.equal(ipBytes('not-an-ip'), null);
  assert.equal(ipBytes('1.2.3'), null);
});

test('hosts records and reverse names come from the same parser', () => {
  const t = emptyTable();
  const text = CASES.map(([ip], i) => `${ip} h${i}.example`).join('\n');
  assert.deepEqual(parseHosts(text, 'h', t), []);
  CASES.forEach(([ip, hex], i) => {
    const hit = lookupHosts(t, `h${i}.example`, ip.includes(':') ? 28 : 1);
    assert.ok(hit && hit.kind === 'addresses', ip);
    assert.equal(hit.addrs[0]!.toString('hex'), hex, ip);
  });
  assert.equal(reverseName('2001:db8::1'), '1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa');
  assert.equal(reverseName('::ffff:192.0.2.1'), '1.0.2.0.0.0.0.c.f.f.f.f.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa');
  assert.equal(reverseName('192.0.2.1'), '1.2.0.192.in-addr.arpa');
});
