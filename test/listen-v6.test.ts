// --listen [::]:PORT is IPv6-only, on purpose (issue 14.11): so that
// `--listen 0.0.0.0:PORT --listen [::]:PORT` binds both, as with dnsmasq;
// IPv4 clients are served by an IPv4 listen address.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { Stub } from './helpers/stub.js';
import { startRaced, udpRaw, makeQuery, decode, firstData } from './helpers/client.js';
import { freePort } from './helpers/process.js';
import { parseEndpoint } from '../src/net/address.js';

function udp6(port: number, msg: Buffer, waitMs = 2000): Promise<Buffer | null> {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp6');
    const t = setTimeout(() => (s.close(), resolve(null)), waitMs);
    s.on('message', (m) => (clearTimeout(t), s.close(), resolve(m)));
    s.on('error', () => (clearTimeout(t), s.close(), resolve(null)));
    s.send(msg, port, '::1');
  });
}

test('--listen [::]:PORT serves IPv6 only; with 0.0.0.0:PORT beside it both families answer', async () => {
  const up = await Stub.start({ address: '192.0.2.61' });
  const port = await freePort();
  let r = await startRaced([up.label], { listen: [parseEndpoint(`[::]:${port}`, 53, true)] });
  try {
    assert.equal(firstData(decode((await udp6(port, makeQuery('six.example')))!)), '192.0.2.61');
    assert.equal(await udpRaw(port, makeQuery('four.example'), 500), null, 'no IPv4 on the IPv6 wildcard');
  } finally {
    await r.close();
  }
  r = await startRaced([up.label], { listen: [parseEndpoint(`0.0.0.0:${port}`, 53, true), parseEndpoint(`[::]:${port}`, 53, true)] });
  try {
    assert.equal(firstData(decode((await udp6(port, makeQuery('six.example')))!)), '192.0.2.61');
    assert.equal(firstData(decode((await udpRaw(port, makeQuery('four.example')))!)), '192.0.2.61');
  } finally {
    await r.close();
    await up.close();
  }
});
