// Defects found in review of the query path, each checked from outside.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Stub } from './helpers/stub.js';
import { makeQuery, startRaced, udpRaw, decode } from './helpers/client.js';
import { parseEndpoint } from '../src/net/address.js';
import { parseMetrics } from '../src/status.js';
import { freeTcpPort } from './helpers/process.js';

test('a BADVERS reply is counted as BADVERS in raced_queries_total, not as NOERROR', async () => {
  const up = await Stub.start();
  const mport = await freeTcpPort();
  const r = await startRaced([up.label], { metricsListen: parseEndpoint(`127.0.0.1:${mport}`, 9153) });
  await r.raced.startMetrics('test');
  try {
    const q = makeQuery('v1.example', { edns: true });
    q[q.length - 5] = 1; // EDNS version 1 (the OPT is the last 11 bytes; version is its TTL's second byte)
    const reply = await udpRaw(r.port, q);
    assert.ok(reply);
    const opt = decode(reply).additionals?.find((a) => a.type === 'OPT') as { extendedRcode?: number } | undefined;
    assert.equal(opt?.extendedRcode, 1, 'BADVERS = extended RCODE 1 in the OPT, 0 in the header');
    const samples = parseMetrics(await (await fetch(`http://127.0.0.1:${mport}/metrics`)).text());
    const count = (rcode: string): number | undefined => samples.find((s) => s.name === 'raced_queries_total' && s.labels.transport === 'udp' && s.labels.rcode === rcode)?.value;
    assert.equal(count('BADVERS'), 1);
    assert.equal(count('NOERROR'), 0);
    assert.equal(up.count(), 0);
  } finally {
    await r.close();
    await up.close();
  }
});
