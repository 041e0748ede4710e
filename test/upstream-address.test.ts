// Unit tests of the upstream address module: the one label of each upstream
// form, and that parsing one loads neither TLS nor HTTP/2.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseUpstream, upstreamLabel } from '../src/upstream/address.js';
import { endpointLabel, hostPart, parseEndpoint } from '../src/net/address.js';

test('endpointLabel: ADDR:PORT, [V6]:PORT, and parseEndpoint reads it back', () => {
  assert.equal(endpointLabel('192.0.2.1', 53), '192.0.2.1:53');
  assert.equal(endpointLabel('::1', 5353), '[::1]:5353');
  assert.equal(endpointLabel('fe80::1%lo', 53), '[fe80::1%lo]:53');
  assert.equal(hostPart('2001:db8::1'), '[2001:db8::1]');
  assert.equal(hostPart('dns.example'), 'dns.example');
  for (const [h, p] of [['192.0.2.1', 53], ['2001:db8::1', 853], ['::', 0]] as const) {
    const ep = parseEndpoint(endpointLabel(h, p), 1, true);
    assert.deepEqual([ep.host, ep.port, ep.label], [h, p, endpointLabel(h, p)]);
  }
});

test('upstream labels: one form per transport, the same from every spelling', () => {
  const cases: [string, string][] = [
    ['192.0.2.1', '192.0.2.1:53'],
    ['udp://192.0.2.1#5353', '192.0.2.1:5353'],
    ['  2001:db8::1 ', '[2001:db8::1]:53'],
    ['[2001:db8::1]:54', '[2001:db8::1]:54'],
    ['tcp://192.0.2.1', 'tcp://192.0.2.1:53'],
    ['tcp://[::1]:5353', 'tcp://[::1]:5353'],
    ['tls://192.0.2.1', 'tls://192.0.2.1:853'],
    ['tls://Dns.Example.@[2001:db8::1]', 'tls://dns.example@[2001:db8::1]:853'],
    ['https://192.0.2.1', 'https://192.0.2.1:443/dns-query'],
    ['https://dns.example@[::1]:8443/q', 'https://dns.example@[::1]:8443/q'],
    ['https://Dns.Example.:444/dns', 'https://dns.example:444/dns'],
  ];
  for (const [spec, label] of cases) {
    const u = parseUpstream(spec);
    assert.equal(u.label, label, spec);
    const { label: _, ...rest } = u;
    assert.equal(upstreamLabel(rest), label, `upstreamLabel of ${spec}`);
  }
});

test('parsing upstreams (config/options, config/resolv, upstream/address) loads neither tls nor http2', () => {
  for (const mod of ['../src/upstream/address.js', '../src/config/options.js', '../src/config/resolv.js']) {
    const url = new URL(mod, import.meta.url).href;
    const script = `await import(${JSON.stringify(url)}); const { parseUpstream } = await import(${JSON.stringify(new URL('../src/upstream/address.js', import.meta.url).href)});
      parseUpstream('tls://dns.example@192.0.2.1'); parseUpstream('https://dns.example/q');
      process.stdout.write(process.moduleLoadList.filter((m) => /^NativeModule (tls|http2|_tls_wrap)$/.test(m)).join(','));`;
    const loaded = execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: fileURLToPath(new URL('.', import.meta.url)), encoding: 'utf8' });
    assert.equal(loaded, '', `${mod} loaded ${loaded}`);
  }
  // The check can see them: the transports do load tls.
  const up = new URL('../src/upstream/upstream.js', import.meta.url).href;
  const loaded = execFileSync(process.execPath, ['--input-type=module', '-e', `await import(${JSON.stringify(up)}); process.stdout.write(process.moduleLoadList.filter((m) => /^NativeModule (tls|http2)$/.test(m)).join(','))`], { encoding: 'utf8' });
  assert.match(loaded, /tls/);
});
