// No packet may end raced (issue 22, item 1). raced runs as its own process,
// as a user runs it, with every path that decodes switched on: search
// domains, hosts files, the cache, UDP and TCP clients; its upstream is a stub
// that sends crafted and randomly mangled replies. Seeded, bounded in count.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import net from 'node:net';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import type dnsPacket from 'dns-packet';
import { Stub } from './helpers/stub.js';
import { makeQuery, udpRaw, tcpExchange, decode, firstData, sleep } from './helpers/client.js';
import { spawnRaced, freePort, freeTcpPort } from './helpers/process.js';
import { frame } from '../src/net/framing.js';
import { startRaced } from './helpers/client.js';

/** mulberry32: a small seeded generator, so a failing run can be repeated. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One record at the root, of `type`, whose RDATA is a compression pointer forward, out of the message (c0 ff). */
function withBadPointerRecord(msg: Buffer, type = 5): Buffer {
  const rr = Buffer.from([0, type >> 8, type & 0xff, 0, 1, 0, 0, 0, 60, 0, 2, 0xc0, 0xff]);
  const out = Buffer.concat([msg, rr]);
  out.writeUInt16BE(out.readUInt16BE(10) + 1, 10);
  return out;
}

/** Mangles a DNS message the ways parsers get wrong: bad pointers, lying counts, cuts, flips, junk records. */
function mutate(msg: Buffer, rnd: () => number): Buffer {
  let b: Buffer = Buffer.from(msg);
  const ops = 1 + Math.floor(rnd() * 3);
  for (let i = 0; i < ops; i++) {
    const at = 12 + Math.floor(rnd() * Math.max(1, b.length - 12));
    switch (Math.floor(rnd() * 8)) {
      case 0: // a pointer somewhere, forward, backward or into itself
        if (at + 1 < b.length) {
          b[at] = 0xc0 | Math.floor(rnd() * 4);
          b[at + 1] = Math.floor(rnd() * 256);
        }
        break;
      case 1: // a count that lies
        b.writeUInt16BE((b.readUInt16BE(4 + 2 * Math.floor(rnd() * 4)) + 1 + Math.floor(rnd() * 3)) & 0xffff, 4 + 2 * Math.floor(rnd() * 4));
        break;
      case 2: // cut short
        b = b.subarray(0, 12 + Math.floor(rnd() * (b.length - 11)));
        break;
      case 3: // a random byte
        if (at < b.length) b[at] = Math.floor(rnd() * 256);
        break;
      case 4: // junk after the message
        b = Buffer.concat([b, Buffer.from(Array.from({ length: 1 + Math.floor(rnd() * 40) }, () => Math.floor(rnd() * 256)))]);
        break;
      case 5: // an extra record with a bad pointer in its data, of a type whose data holds names
        b = withBadPointerRecord(b, [2, 5, 6, 12, 15, 33, 39, 41][Math.floor(rnd() * 8)]!);
        break;
      case 6: // a label length out of range
        if (at < b.length) b[at] = 0x40 + Math.floor(rnd() * 0x80);
        break;
      case 7: // an RDLENGTH past the end
        if (at + 1 < b.length) b.writeUInt16BE(0xfff0, at);
        break;
    }
  }
  return b;
}

const TYPES: dnsPacket.RecordType[] = ['A', 'AAAA', 'PTR', 'TXT', 'MX', 'CNAME', 'SOA', 'SRV'];
/** Search candidates (short names), hosts names, localhost, forwarded names. */
const NAMES = ['redis', 'db', 'printer', 'nas.lan', 'x.localhost', 'fz.example', 'fz-deep.sub.example', '1.2.0.192.in-addr.arpa'];

let up: Stub;
let child: ChildProcess;
let port: number;
let metricsPort: number;
let log: () => string;
const upstreamRnd = prng(0x22f00d);

before(async () => {
  // Names under corp.example (what search asks) and fz* names get mangled replies; the rest are answered well.
  up = await Stub.start({
    zone: undefined,
    mangle: (reply, name) => {
      const n = name.toLowerCase();
      if (n.startsWith('craft-')) return withBadPointerRecord(reply);
      if (!n.endsWith('corp.example') && !n.startsWith('fz')) return reply;
      return upstreamRnd() < 0.8 ? mutate(reply, upstreamRnd) : reply;
    },
  });
  const dir = mkdtempSync(join(tmpdir(), 'raced-fuzz-'));
  const hosts = join(dir, 'hosts');
  writeFileSync(hosts, '192.0.2.50 printer nas.lan\n2001:db8::50 printer\n192.0.2.51 *.wild.lan\n');
  port = await freePort();
  metricsPort = await freeTcpPort();
  const started = await spawnRaced([
    '--listen', `127.0.0.1:${port}`,
    '--server', up.label,
    '--no-resolv',
    '--enable-search',
    '--search-domains', 'corp.example,other.example',
    '--hostsfile', hosts,
    '--cache-size', '1000',
    '--timeout', '400',
    '--metrics-listen', `127.0.0.1:${metricsPort}`,
    '--log-level', 'info',
  ]);
  child = started.child;
  log = started.log;
});
after(async () => {
  child.kill('SIGTERM');
  await up.close();
});

function alive(): void {
  assert.equal(child.exitCode, null, `raced exited: ${log().slice(-2000)}`);
  assert.equal(child.signalCode, null, `raced was killed: ${log().slice(-2000)}`);
}

/** raced still answers good queries over UDP and TCP, from the upstream and from the hosts file. */
async function stillAnswers(): Promise<void> {
  alive();
  const r = await udpRaw(port, makeQuery('alive.example'));
  assert.ok(r, 'a UDP answer after the crafted traffic');
  assert.equal(firstData(decode(r)), '192.0.2.1');
  const [t] = await tcpExchange(port, [makeQuery('alive-tcp.example')], 1);
  assert.equal(firstData(decode(t!)), '192.0.2.1');
  const h = await udpRaw(port, makeQuery('nas.lan'));
  assert.equal(firstData(decode(h!)), '192.0.2.50');
}

test('--enable-search: a query with a forward compression pointer in an extra record does not end raced', async () => {
  // The query of the issue: a short name, one extra record whose data is c0 ff.
  const q = withBadPointerRecord(makeQuery('a', { id: 0x1234 }));
  await udpRaw(port, q, 300);
  await tcpExchange(port, [q, makeQuery('after.example')], 1).catch(() => []);
  await sleep(100);
  await stillAnswers();
});

test('--enable-search: an upstream reply with a bad pointer in a searched name does not end raced', async () => {
  // "craft-x" is searched as craft-x.corp.example; the stub adds the bad record to every reply for it.
  await udpRaw(port, makeQuery('craft-x'), 600);
  await udpRaw(port, makeQuery('craft-y', { edns: true }), 600);
  await sleep(100);
  await stillAnswers();
});

test(
  '--enable-search: crafted queries and upstream replies are answered, not dropped',
  async () => {
    const q = withBadPointerRecord(makeQuery('a', { id: 0x4321 }));
    const r = await udpRaw(port, q, 1000);
    assert.ok(r, 'a reply to the crafted query');
    assert.equal(r.readUInt16BE(0), 0x4321);
    const u = await udpRaw(port, makeQuery('craft-z', { id: 0x5678 }), 1000);
    assert.ok(u, 'a reply when the upstream reply for a searched name is crafted');
  },
);

test('fuzz: 3,000 mangled UDP queries and mangled upstream replies on every decoding path', { timeout: 60_000 }, async () => {
  const rnd = prng(0x5eed22);
  const sock = dgram.createSocket('udp4');
  let replies = 0;
  sock.on('message', () => replies++);
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  const deadline = Date.now() + 30_000;
  for (let i = 0; i < 3000 && Date.now() < deadline; i++) {
    const name = NAMES[Math.floor(rnd() * NAMES.length)]!;
    const type = TYPES[Math.floor(rnd() * TYPES.length)]!;
    const base = makeQuery(name, { type, edns: rnd() < 0.5, id: i & 0xffff });
    // One in five goes as it is, so the stub's mangled replies are met too.
    sock.send(rnd() < 0.2 ? base : mutate(base, rnd), port, '127.0.0.1');
    if (i % 50 === 49) {
      await sleep(15);
      alive();
    }
  }
  await sleep(500);
  sock.close();
  alive();
  assert.ok(replies > 300, `raced kept answering during the run (${replies} replies)`);
  await stillAnswers();
});

test('fuzz: TCP framing and mangled queries over TCP', { timeout: 60_000 }, async () => {
  const rnd = prng(0x7c9);
  for (let c = 0; c < 20; c++) {
    await new Promise<void>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.on('error', () => resolve());
      s.on('close', () => resolve());
      s.on('data', () => {});
      s.on('connect', async () => {
        const parts: Buffer[] = [];
        for (let i = 0; i < 25; i++) {
          const base = makeQuery(NAMES[Math.floor(rnd() * NAMES.length)]!, { type: TYPES[Math.floor(rnd() * TYPES.length)]!, edns: rnd() < 0.5 });
          const m = rnd() < 0.2 ? base : mutate(base, rnd);
          const k = rnd();
          if (k < 0.05) parts.push(Buffer.from([0, 0])); // a zero-length frame
          else if (k < 0.1) parts.push(Buffer.from([0, 5, 1, 2])); // a frame that never completes
          else if (k < 0.15) parts.push(Buffer.from([0, 11, ...Buffer.alloc(11)])); // shorter than a header
          else parts.push(frame(m));
        }
        const all = Buffer.concat(parts);
        // Random chunk sizes, so frames split anywhere.
        for (let at = 0; at < all.length && !s.destroyed; ) {
          const n = 1 + Math.floor(rnd() * 200);
          s.write(all.subarray(at, at + n));
          at += n;
          if (rnd() < 0.1) await sleep(1);
        }
        await sleep(50);
        s.end();
        setTimeout(() => s.destroy(), 500).unref();
      });
    });
    alive();
  }
  await stillAnswers();
});

test('the last-resort guard: an exception while handling one query drops it, counts it, and leaves nothing in flight', async () => {
  const good = await Stub.start();
  const r = await startRaced([good.label], { cacheSize: 100 });
  try {
    const p = r.raced.pipeline;
    // A fault after the query was counted in flight: the count goes back.
    const select = r.raced.router.select.bind(r.raced.router);
    r.raced.router.select = () => {
      throw new Error('boom in routing');
    };
    assert.equal(await udpRaw(r.port, makeQuery('fault-route.example'), 300), null, 'the faulted query is dropped');
    r.raced.router.select = select;
    assert.equal(p.inflight, 0);
    assert.equal(p.guard.counts.pipeline, 1);
    // A fault while the race's waiters are answered: each gets SERVFAIL, none stays in flight.
    const proto = Object.getPrototypeOf(p) as { answerFlight: (...a: unknown[]) => void };
    const own = p as unknown as { answerFlight: (...a: unknown[]) => void };
    own.answerFlight = () => {
      throw new Error('boom in answering');
    };
    const reply = await udpRaw(r.port, makeQuery('fault-finish.example'), 2000);
    assert.ok(reply);
    assert.equal(reply[3]! & 0x0f, 2, 'SERVFAIL');
    own.answerFlight = proto.answerFlight;
    assert.equal(p.inflight, 0);
    assert.ok(p.guard.counts.pipeline + p.guard.counts.upstream >= 2);
    assert.ok(r.logs.some((l) => l.includes('boom in answering')));
    // And the next query is answered as usual.
    const ok = await udpRaw(r.port, makeQuery('after-fault.example'));
    assert.equal(firstData(decode(ok!)), '192.0.2.1');
  } finally {
    await r.close();
    await good.close();
  }
});

test('the guard is reported: raced_query_errors_total by stage, raced_uncaught_errors_total by kind', async (t) => {
  const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
  const text = await res.text();
  // What the guard caught during the run above (the search path's faults until its rewrite lands).
  for (const line of text.split('\n')) if (/^raced_(query|uncaught)_errors_total/.test(line)) t.diagnostic(line);
  for (const stage of ['udp', 'tcp', 'pipeline', 'upstream']) assert.match(text, new RegExp(`raced_query_errors_total\\{stage="${stage}"\\} \\d+`));
  for (const kind of ['exception', 'rejection']) assert.match(text, new RegExp(`raced_uncaught_errors_total\\{kind="${kind}"\\} \\d+`));
  alive();
});
