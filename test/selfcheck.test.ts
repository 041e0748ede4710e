// The start-up self-check of --default-resolver (p-any over the listen
// addresses): any one answering is enough, and the probes of the others are
// cancelled then, not left waiting for their timeout (issue 22, item 9).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { answersOn } from '../src/selfcheck.js';
import { parseEndpoint } from '../src/net/address.js';
import { Stub } from './helpers/stub.js';
import { startRaced } from './helpers/client.js';

const udpHandles = (): number => process.getActiveResourcesInfo().filter((r) => r === 'UDPWrap').length;

test('one answering address is enough; the silent one is cancelled at once, its socket closed', async () => {
  const up = await Stub.start();
  const r = await startRaced([up.label]);
  // A bound socket that never answers: its probe would wait the whole timeout.
  const silent = dgram.createSocket('udp4');
  await new Promise<void>((res) => silent.bind(0, '127.0.0.1', res));
  try {
    const before = udpHandles();
    const t0 = performance.now();
    const ep = await answersOn([parseEndpoint(`127.0.0.1:${silent.address().port}`, 53), r.raced.bound[0]!], 5000);
    assert.equal(ep.port, r.port);
    assert.ok(performance.now() - t0 < 1000, 'no wait for the silent address');
    await new Promise((res) => setTimeout(res, 100));
    assert.equal(udpHandles(), before, 'both probe sockets are closed');
    await assert.rejects(answersOn([parseEndpoint(`127.0.0.1:${silent.address().port}`, 53)], 200), /no answer/);
  } finally {
    silent.close();
    await r.close();
    await up.close();
  }
});
