// TCP cannot be starved: hundreds of idle and half-sent connections from a few
// addresses, and a client that never reads its replies, against a raced
// process; another client's queries are answered at once meanwhile.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { Stub } from './helpers/stub.js';
import { makeQuery, udpQuery, tcpExchange, sleep, decode, firstData } from './helpers/client.js';
import { freePort, freeTcpPort, spawnRaced } from './helpers/process.js';
import { frame } from '../src/net/framing.js';
import { parseMetrics } from '../src/status.js';

function connect(port: number, source: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1', localAddress: source }, () => resolve(s));
    s.on('error', reject);
  });
}

async function shed(mport: number): Promise<Record<string, number>> {
  const samples = parseMetrics(await (await fetch(`http://127.0.0.1:${mport}/metrics`)).text());
  return Object.fromEntries(samples.filter((s) => s.name === 'raced_tcp_connections_shed_total').map((s) => [s.labels.reason!, s.value]));
}

test('idle and half-sent connections from four addresses do not starve another client; they are shed and closed', async () => {
  const up = await Stub.start({ address: '192.0.2.80' });
  const port = await freePort();
  const mport = await freeTcpPort();
  const { child } = await spawnRaced(['--listen', `127.0.0.1:${port}`, '--server', up.label, '--no-resolv', '--metrics-listen', `127.0.0.1:${mport}`, '--tcp-idle-timeout', '4000']);
  const abusive: net.Socket[] = [];
  try {
    let closed = 0;
    // 4 addresses x (60 idle + 10 half-sent) = 280 connections against a cap of 256 and 64 per address.
    for (let a = 2; a <= 5; a++) {
      for (let i = 0; i < 70; i++) {
        const s = await connect(port, `127.0.0.${a}`).catch(() => null);
        if (s === null) continue;
        s.on('close', () => closed++);
        s.on('error', () => {});
        if (i >= 60) s.write(Buffer.from([0x00, 0x40, 0x12, 0x34])); // a length prefix and two bytes of 64
        abusive.push(s);
      }
    }
    // Another client: one query, ten pipelined, and one sent byte by byte, each well under 100 ms.
    for (const [what, msgs, chunked] of [['single', [makeQuery('one.example')], false], ['pipelined', Array.from({ length: 10 }, (_, i) => makeQuery(`p${i}.example`)), false], ['bytewise', [makeQuery('bytes.example')], true]] as const) {
      const t0 = performance.now();
      const replies = await tcpExchange(port, [...msgs], msgs.length, 2000, chunked);
      const ms = performance.now() - t0;
      assert.equal(replies.length, msgs.length);
      for (const r of replies) assert.equal(firstData(decode(r)), '192.0.2.80');
      assert.ok(ms < 100, `${what}: ${ms.toFixed(1)} ms`);
    }
    assert.equal(firstData((await udpQuery(port, 'udp.example')).packet), '192.0.2.80');
    let s = await shed(mport);
    // 350 + 3 connections (the other client's) against the cap of 256: the rest shed, at the
    // cap or at an address's own 64, never refused (idle ones could always go).
    assert.ok(s.cap! + s.per_client! >= abusive.length - 256, JSON.stringify(s));
    assert.ok(s.per_client! >= 1 && s.cap! >= 1, `both kinds of shedding: ${JSON.stringify(s)}`);
    assert.equal(s.refused, 0, 'no connection refused while idle ones could go');
    // Half-sent ones go after 2 s, idle ones after the idle timeout (4 s here): all within half a minute.
    const t0 = Date.now();
    while (closed < abusive.length && Date.now() - t0 < 8000) await sleep(100);
    assert.equal(closed, abusive.length, `closed ${closed} of ${abusive.length} within ${Date.now() - t0} ms`);
    s = await shed(mport);
    assert.ok(s.partial! >= 1, `partial: ${JSON.stringify(s)}`);
    assert.ok(s.idle! >= 1, `idle: ${JSON.stringify(s)}`);
  } finally {
    for (const s of abusive) s.destroy();
    child.kill('SIGTERM');
    await up.close();
  }
});

test('a client that never reads its replies is paused, then closed; memory stays bounded', async () => {
  const bulkAnswers = (name: string, type: string): import('dns-packet').Answer[] =>
    type === 'A' ? Array.from({ length: 60 }, (_, i) => ({ name, type: 'A', ttl: 300, data: `198.51.100.${i}` })) : [];
  const up = await Stub.start({ answers: bulkAnswers });
  const port = await freePort();
  const mport = await freeTcpPort();
  const { child } = await spawnRaced(['--listen', `127.0.0.1:${port}`, '--server', up.label, '--no-resolv', '--metrics-listen', `127.0.0.1:${mport}`]);
  const rss = (): number => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))![1]) / 1024;
  try {
    const before = rss();
    const sock = await connect(port, '127.0.0.1');
    sock.pause(); // never read
    let closedAt = 0;
    sock.on('close', () => (closedAt = Date.now()));
    sock.on('error', () => {});
    const q = frame(makeQuery('big.example'));
    const t0 = Date.now();
    // Bounded: at most 200,000 queries (~6 MB) or 15 s.
    for (let i = 0; i < 200_000 && closedAt === 0 && Date.now() - t0 < 15_000; i++) {
      if (!sock.write(q)) await sleep(5);
      if (i % 1000 === 0) await sleep(1);
    }
    while (closedAt === 0 && Date.now() - t0 < 16_000) await sleep(100);
    const peak = rss();
    assert.ok(closedAt > 0, 'the connection was closed');
    const s = await shed(mport);
    assert.equal(s.stalled, 1);
    assert.ok(peak - before < 40, `RSS grew ${(peak - before).toFixed(1)} MB`);
    // raced still answers.
    assert.equal(decode((await tcpExchange(port, [makeQuery('after.example')], 1))[0]!).answers?.length, 60);
  } finally {
    child.kill('SIGTERM');
    await up.close();
  }
});

test('queries raced ends without a reply (empty frame, QR=1) do not pin a TCP connection: it ends after the client is done', async () => {
  const up = await Stub.start();
  const port = await freePort();
  const { child } = await spawnRaced(['--listen', `127.0.0.1:${port}`, '--server', up.label, '--no-resolv']);
  try {
    const sock = await connect(port, '127.0.0.1');
    sock.on('error', () => {});
    const closed = new Promise<number>((res) => {
      const t0 = Date.now();
      sock.on('close', () => res(Date.now() - t0));
    });
    const qr1 = makeQuery('loop.example');
    qr1[2] = qr1[2]! | 0x80;
    sock.write(Buffer.concat([Buffer.from([0, 0]), frame(qr1), frame(makeQuery('real.example'))]));
    let got = 0;
    sock.on('data', () => got++);
    await sleep(200);
    sock.end();
    const ms = await Promise.race([closed, sleep(3000).then(() => -1)]);
    assert.ok(ms >= 0 && ms < 1000, `closed ${ms} ms after the client's FIN (it owed nothing more)`);
    assert.equal(got >= 1, true, 'the real query was answered');
  } finally {
    child.kill('SIGTERM');
    await up.close();
  }
});
