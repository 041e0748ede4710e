// --rate-limit: a token bucket per client prefix, unit-tested on an injected
// clock, then end to end with a flood from 127.0.0.2 beside a modest 127.0.0.1.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import net from 'node:net';
import { FrameReader, frame } from '../src/net/framing.js';
import { RateLimiter, type RateLimitOptions } from '../src/ratelimit.js';
import { parseCidr } from '../src/net/address.js';
import { Stub } from './helpers/stub.js';
import { makeQuery, startRaced, sleep } from './helpers/client.js';
import { freeTcpPort } from './helpers/process.js';
import { parseEndpoint } from '../src/net/address.js';
import { parseMetrics } from '../src/status.js';

const base: RateLimitOptions = { qps: 10, v4Prefix: 32, v6Prefix: 64, action: 'refuse', exempt: [] };

function limiter(o: Partial<RateLimitOptions> = {}, capacity?: number): { rl: RateLimiter; clock: { t: number } } {
  const clock = { t: 1000 };
  return { rl: new RateLimiter({ ...base, ...o }, () => clock.t, capacity), clock };
}

const admitted = (rl: RateLimiter, addr: string, n: number): number => {
  let k = 0;
  for (let i = 0; i < n; i++) if (rl.admit(addr)) k++;
  return k;
};

test('a bucket holds one second of queries and refills at the rate', () => {
  const { rl, clock } = limiter();
  assert.equal(admitted(rl, '192.0.2.1', 25), 10);
  assert.equal(rl.limited.refuse, 15);
  clock.t += 100; // one token back
  assert.equal(admitted(rl, '192.0.2.1', 5), 1);
  clock.t += 60_000; // never more than a full bucket
  assert.equal(admitted(rl, '192.0.2.1', 25), 10);
  assert.equal(admitted(rl, '192.0.2.2', 3), 3, 'another address has its own bucket');
});

test('prefixes: IPv4 /32 and IPv6 /64 by default, wider on request', () => {
  const { rl } = limiter({ qps: 2 });
  assert.equal(admitted(rl, '2001:db8:1:2::1', 2), 2);
  assert.equal(admitted(rl, '2001:db8:1:2:ffff::9', 2), 0, 'same /64');
  assert.equal(admitted(rl, '2001:db8:1:3::1', 2), 2, 'another /64');
  assert.equal(admitted(rl, '198.51.100.7', 2), 2);
  // Listeners unmap ::ffff: sources only on dual-stack sockets; one that reaches here is an IPv6 address.
  assert.equal(admitted(rl, '::ffff:198.51.100.7', 2), 2, 'an IPv6 address of its own');
  const wide = limiter({ qps: 2, v4Prefix: 24 }).rl;
  assert.equal(admitted(wide, '198.51.100.7', 1) + admitted(wide, '198.51.100.200', 3), 2);
  assert.equal(admitted(wide, '198.51.101.1', 2), 2);
});

test('exempt clients are never limited; the table stays bounded under a spoofed-source flood', () => {
  const { rl } = limiter({ qps: 1, exempt: [parseCidr('127.0.0.0/8'), parseCidr('::1')] });
  assert.equal(admitted(rl, '127.0.0.2', 100), 100);
  assert.equal(admitted(rl, '::1', 100), 100);
  assert.equal(rl.tracked, 0);
  const small = limiter({ qps: 1 }, 1000).rl;
  for (let i = 0; i < 50_000; i++) small.admit(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
  assert.equal(small.tracked, 1000);
});

/** `n` queries over one TCP connection from `source`; the replies in order of arrival. */
function tcpFrom(source: string, port: number, n: number): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const out: Buffer[] = [];
    const reader = new FrameReader();
    const sock = net.connect({ port, host: '127.0.0.1', localAddress: source }, () => {
      for (let i = 0; i < n; i++) sock.write(frame(makeQuery(`tcp${i}.example`)));
    });
    sock.on('data', (c) => reader.push(c, (m) => out.push(m) === n && (sock.end(), resolve(out))));
    sock.on('error', reject);
    sock.setTimeout(3000, () => (sock.destroy(), reject(new Error(`only ${out.length} of ${n} TCP replies`))));
  });
}

/** Sends `count` queries from `source` spread over `ms`; resolves with the replies by ID. */
async function flood(port: number, source: string, count: number, ms: number, name: string): Promise<Map<number, Buffer>> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, source, r));
  const replies = new Map<number, Buffer>();
  s.on('message', (m) => replies.set(m.readUInt16BE(0), m));
  const t0 = Date.now();
  for (let i = 0; i < count; i++) {
    s.send(makeQuery(name, { id: i }), port, '127.0.0.1');
    const due = t0 + ((i + 1) * ms) / count;
    if (due > Date.now()) await sleep(due - Date.now());
  }
  await sleep(300);
  s.close();
  return replies;
}

test('one address flooding at 10x the limit gets about the limit; another at a modest rate is answered in full', async () => {
  const up = await Stub.start();
  const mport = await freeTcpPort();
  const r = await startRaced([up.label], {
    rateLimit: 50,
    metricsListen: parseEndpoint(`127.0.0.1:${mport}`, 9153),
  });
  await r.raced.startMetrics('test');
  try {
    const [bad, good] = await Promise.all([flood(r.port, '127.0.0.2', 1000, 2000, 'flood.example'), flood(r.port, '127.0.0.1', 40, 2000, 'calm.example')]);
    assert.equal(bad.size, 1000, 'refuse answers every query');
    const answered = [...bad.values()].filter((m) => (m[3]! & 0xf) === 0).length;
    const refused = [...bad.values()].filter((m) => (m[3]! & 0xf) === 5).length;
    // 50 in the bucket at the start plus 50/s for about 2 s.
    assert.ok(answered >= 120 && answered <= 180, `flooder answered ${answered}`);
    assert.equal(answered + refused, 1000);
    assert.equal([...good.values()].filter((m) => (m[3]! & 0xf) === 0).length, 40, 'the calm client: all answered');
    const samples = parseMetrics(await (await fetch(`http://127.0.0.1:${mport}/metrics`)).text());
    const limited = (action: string): number | undefined => samples.find((s) => s.name === 'raced_ratelimited_total' && s.labels.action === action)?.value;
    assert.equal(limited('refuse'), refused);
    assert.equal(limited('drop'), 0);
  } finally {
    await r.close();
    await up.close();
  }
});

test('--rate-limit-action drop sends nothing; truncate sends TC=1 over UDP and answers over TCP', async () => {
  const up = await Stub.start();
  for (const action of ['drop', 'truncate'] as const) {
    const r = await startRaced([up.label], { rateLimit: 5, rateLimitAction: action });
    try {
      const replies = await flood(r.port, '127.0.0.3', 30, 100, `${action}.example`);
      const ok = [...replies.values()].filter((m) => (m[2]! & 0x02) === 0 && (m[3]! & 0xf) === 0);
      assert.ok(ok.length >= 5 && ok.length <= 6, `${action}: ${ok.length} answered`);
      if (action === 'drop') assert.equal(replies.size, ok.length, 'nothing sent over the limit');
      else {
        const tc = [...replies.values()].filter((m) => (m[2]! & 0x02) !== 0);
        assert.equal(tc.length, 30 - ok.length);
        assert.ok(tc.every((m) => m.readUInt16BE(6) === 0), 'TC replies carry no answer');
        assert.equal(r.raced.pipeline.rateLimiter!.limited.truncate, tc.length);
        // The client moves to TCP, where its address is real: answered, over the limit or not.
        const overTcp = await tcpFrom('127.0.0.3', r.port, 12);
        assert.deepEqual(overTcp.map((m) => m[3]! & 0xf), Array<number>(12).fill(0));
      }
    } finally {
      await r.close();
    }
  }
  await up.close();
});
