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

test('opcodes other than QUERY: NOTIMP, opcode echoed, AA/RA/RD clear; QUERY errors keep RD and RA', async () => {
  const up = await Stub.start();
  const r = await startRaced([up.label]);
  try {
    for (const opcode of [1, 2, 4, 5, 6, 15]) {
      for (const rd of [true, false]) {
        const q = makeQuery('op.example', { rd });
        q[2] = (q[2]! & 0x87) | (opcode << 3);
        const reply = await udpRaw(r.port, q);
        assert.ok(reply, `a reply to opcode ${opcode}`);
        assert.equal(reply.readUInt16BE(0), q.readUInt16BE(0), 'ID echoed');
        const flags = reply.readUInt16BE(2);
        assert.equal(flags & 0x8000, 0x8000, 'QR');
        assert.equal((flags >> 11) & 0xf, opcode, 'opcode echoed');
        assert.equal(flags & 0x0400, 0, 'AA clear');
        assert.equal(flags & 0x0100, 0, `RD clear (opcode ${opcode}, rd ${rd})`);
        assert.equal(flags & 0x0080, 0, 'RA clear');
        assert.equal(flags & 0xf, 4, 'NOTIMP');
      }
    }
    // A QUERY that raced cannot take (two questions): FORMERR with RD echoed, RA set.
    const two = makeQuery('fe.example');
    two.writeUInt16BE(2, 4);
    const fe = await udpRaw(r.port, two);
    assert.ok(fe);
    assert.equal(fe.readUInt16BE(2) & 0x818f, 0x8181, 'QR, RD echoed, RA, FORMERR');
    assert.equal(up.count(), 0);
  } finally {
    await r.close();
    await up.close();
  }
});

test('--dns-forward-max counts only queries that would wait: a local domain still gets NXDOMAIN at the cap', async () => {
  const slow = await Stub.start({ delayMs: 800 });
  const r = await startRaced([slow.label], { forwardMax: 1, routes: [{ domain: 'corp', spec: null }] });
  try {
    const waiting = udpRaw(r.port, makeQuery('slow.example'));
    await new Promise((res) => setTimeout(res, 50));
    const capped = await udpRaw(r.port, makeQuery('other.example'));
    assert.equal(capped![3]! & 0xf, 5, 'a forwarded query at the cap: REFUSED');
    const local = await udpRaw(r.port, makeQuery('host.corp'));
    assert.equal(local![3]! & 0xf, 3, 'a local domain at the cap: NXDOMAIN, as without the cap');
    assert.ok(await waiting);
  } finally {
    await r.close();
    await slow.close();
  }
});
