// Unit tests of the one name normaliser (wire/names.ts) and of the places
// that now share it: hosts files, --server=/domain/ rules, TLS names, the
// control socket's names.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { normalName, withoutDot } from '../src/wire/names.js';
import { emptyTable, lookupHosts, parseHosts } from '../src/hosts/hosts.js';
import { normaliseDomain } from '../src/router.js';
import { parseUpstream } from '../src/upstream/address.js';
import { nameToWire } from '../src/control.js';
import { textToWire } from '../src/wire/build.js';

test('withoutDot strips one trailing dot and keeps case', () => {
  assert.equal(withoutDot('Example.COM.'), 'Example.COM');
  assert.equal(withoutDot('example.com'), 'example.com');
  assert.equal(withoutDot('.'), '');
  assert.equal(withoutDot(''), '');
  assert.equal(withoutDot('a..'), 'a.');
});

test('normalName: no trailing dot, A-Z folded, nothing else', () => {
  assert.equal(normalName('WWW.Example.COM.'), 'www.example.com');
  assert.equal(normalName('already.lower'), 'already.lower');
  assert.equal(normalName('.'), '');
  // RFC 4343: only ASCII letters fold. toLowerCase would turn the Kelvin sign into 'k' and À into à.
  assert.equal(normalName('\u212Aelvin.TEST'), '\u212Aelvin.test');
  assert.equal(normalName('\u00C0.TEST.'), '\u00C0.test');
  assert.equal(normalName('A\\.B.C'), 'a\\.b.c');
});

test('every user of the rule agrees: hosts, routes, TLS names, control, textToWire', () => {
  const t = emptyTable();
  const problems = parseHosts('192.0.2.7 Host.Example. \n192.0.2.8 \u212Aelvin.example\n', 'h', t);
  const hit = lookupHosts(t, normalName('HOST.example.'), 1);
  assert.ok(hit !== null && hit.kind === 'addresses', 'Host.Example. found under its normal form');
  // The Kelvin sign is not a letter of a host name: reported, and not taken as 'kelvin.example'.
  assert.equal(problems.length, 1);
  assert.match(problems[0]!.message, /bad name/);
  assert.equal(lookupHosts(t, 'kelvin.example', 1), null);
  assert.equal(normaliseDomain('  Corp.EXAMPLE. '), 'corp.example');
  assert.equal(parseUpstream('tls://Dns.Example.@192.0.2.1').tlsName, 'dns.example');
  assert.throws(() => parseUpstream('tls://\u212A.example@192.0.2.1'), /bad TLS server name/, 'not folded to k.example');
  assert.deepEqual(nameToWire(' WWW.Example. '), textToWire('www.example'));
  assert.deepEqual(textToWire('a.b.'), textToWire('a.b'));
});
