// Wrong negative answers and what the guard against them costs (issue 16).
// Two nsd upstreams behind fault proxies: "wrong" answers in ~2 ms but lacks
// every fifth name (NXDOMAIN: a split-horizon or filtering resolver), "right"
// knows every name and answers in ~20 ms. Each server gets the same queries
// from a small Node client (bounded concurrency) that records every reply:
// - holes: 1,000 A queries for distinct names; an NXDOMAIN is a wrong answer;
// - mixed: 500 names both know, A and AAAA each; the zone has no AAAA, so
//   every AAAA is NODATA from both upstreams (negative with agreement).
// Servers: raced (default grace), raced --negative-grace 0 (no guard),
// raced --strategy hedged (fires its hedge on a negative answer), dnsmasq --all-servers --cache-size=0. No cache anywhere.
//   node dist/bench/negative.js [--names N] [--concurrency N] [--right-ms MS] [--wrong-ms MS] [--right-dead]
import dgram from 'node:dgram';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir, cpus } from 'node:os';
import { join } from 'node:path';
import { numArg } from './lib/args.js';
import { startDnsmasq, startNsd, startRaced, type Proc } from './lib/procs.js';
import { FaultProxy } from './lib/fault-proxy.js';
import { percentile } from './lib/stats.js';

const names = numArg('--names', 1000);
const concurrency = numArg('--concurrency', 10);
const rightMs = numArg('--right-ms', 20);
const wrongMs = numArg('--wrong-ms', 2);
/** The "right" upstream drops everything: what a lone negative answer beside a dead upstream costs. */
const rightDead = process.argv.includes('--right-dead');
const ORIGIN = 'neg.test';
const dir = mkdtempSync(join(tmpdir(), 'raced-bench-neg-'));
const cpu = cpus().length >= 2 ? '0' : null;

/** h0..h{n-1} with one A each; `holes`: leave out every fifth name. */
function zone(file: string, n: number, holes: boolean): string {
  const lines = [`$ORIGIN ${ORIGIN}.`, '$TTL 3600', `@ IN SOA ns.${ORIGIN}. admin.${ORIGIN}. 1 3600 600 86400 300`, `@ IN NS ns.${ORIGIN}.`, 'ns IN A 127.0.0.1'];
  for (let i = 0; i < n; i++) if (!holes || i % 5 !== 0) lines.push(`h${i} IN A 198.18.${(i >> 8) & 255}.${i & 255}`);
  const path = join(dir, file);
  writeFileSync(path, lines.join('\n') + '\n');
  return path;
}

function query(id: number, name: string, qtype: number): Buffer {
  const labels = name.split('.');
  const q = Buffer.alloc(12 + labels.reduce((a, l) => a + l.length + 1, 1) + 4);
  q.writeUInt16BE(id, 0);
  q.writeUInt16BE(0x0100, 2);
  q.writeUInt16BE(1, 4);
  let o = 12;
  for (const l of labels) {
    q[o++] = l.length;
    o += q.write(l, o, 'latin1');
  }
  q[o++] = 0;
  q.writeUInt16BE(qtype, o);
  q.writeUInt16BE(1, o + 2);
  return q;
}

interface Sample {
  name: string;
  qtype: number;
  rcode: number;
  answers: number;
  ms: number;
}

/** Sends every query, `concurrency` at a time; a query with no reply in 3 s counts with rcode -1. */
async function drive(port: number, work: { name: string; qtype: number }[]): Promise<Sample[]> {
  const sock = dgram.createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  const out: Sample[] = [];
  const pending = new Map<number, { w: { name: string; qtype: number }; t0: number; done: () => void; timer: NodeJS.Timeout }>();
  sock.on('message', (m) => {
    const p = pending.get(m.readUInt16BE(0));
    if (!p) return;
    pending.delete(m.readUInt16BE(0));
    clearTimeout(p.timer);
    out.push({ name: p.w.name, qtype: p.w.qtype, rcode: m[3]! & 0x0f, answers: m.readUInt16BE(6), ms: performance.now() - p.t0 });
    p.done();
  });
  let next = 0;
  let id = 0;
  const worker = async (): Promise<void> => {
    while (next < work.length) {
      const w = work[next++]!;
      const qid = id++ & 0xffff;
      await new Promise<void>((done) => {
        const timer = setTimeout(() => {
          pending.delete(qid);
          out.push({ name: w.name, qtype: w.qtype, rcode: -1, answers: 0, ms: 3000 });
          done();
        }, 3000);
        pending.set(qid, { w, t0: performance.now(), done, timer });
        sock.send(query(qid, w.name, w.qtype), port, '127.0.0.1');
      });
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  sock.close();
  return out;
}

const round = (x: number): number => Number(x.toFixed(1));
const lat = (xs: Sample[]): { p50: number; p99: number; n: number } => ({
  p50: round(percentile(xs.map((s) => s.ms), 50)),
  p99: round(percentile(xs.map((s) => s.ms), 99)),
  n: xs.length,
});

const procs: Proc[] = [];
const proxies: FaultProxy[] = [];
try {
  // nsd's response rate limiting (200/s per bucket by default) would drop NXDOMAIN/NODATA replies: this bench is all about them.
  const noRrl = ['rrl-ratelimit: 0'];
  const right = await startNsd(dir, ORIGIN, zone('right.zone', names, false), cpu, noRrl);
  const wrong = await startNsd(join(dir, 'w'), ORIGIN, zone('wrong.zone', names, true), cpu, noRrl);
  procs.push(right, wrong);
  const pr = await FaultProxy.start(right.port);
  const pw = await FaultProxy.start(wrong.port);
  proxies.push(pr, pw);
  pr.faults = { delayMs: rightMs, jitterMs: rightMs / 4, dead: rightDead, servfailRate: 0 };
  pw.faults = { delayMs: wrongMs, jitterMs: wrongMs / 2, dead: false, servfailRate: 0 };
  const ups = [pw.port, pr.port];
  const servers: [string, () => Promise<Proc>][] = [
    ['raced (default negative grace)', () => startRaced(ups, ['--cache-size', '0'], null)],
    ['raced --negative-grace 0 (no guard)', () => startRaced(ups, ['--cache-size', '0', '--negative-grace', '0'], null)],
    ['raced --strategy hedged', () => startRaced(ups, ['--cache-size', '0', '--strategy', 'hedged'], null)],
    ['dnsmasq --all-servers --cache-size=0', () => startDnsmasq(ups, ['--all-servers', '--cache-size=0'], null)],
  ];
  // dnsmasq's start-up probe goes out of zone, where "wrong" says REFUSED and dnsmasq waits for the dead one.
  if (rightDead) servers.pop();
  const holes = Array.from({ length: names }, (_, i) => ({ name: `h${i}.${ORIGIN}`, qtype: 1 }));
  const known = Array.from({ length: names }, (_, i) => i).filter((i) => i % 5 !== 0).slice(0, names / 2);
  const mixed = known.flatMap((i) => [
    { name: `h${i}.${ORIGIN}`, qtype: 1 },
    { name: `h${i}.${ORIGIN}`, qtype: 28 },
  ]);
  const rows = [];
  for (const [label, start] of servers) {
    const p = await start();
    procs.push(p);
    await drive(p.port, holes.slice(0, 20)); // warm-up: upstream latency measured
    const h = await drive(p.port, holes);
    pr.resetCounters();
    pw.resetCounters();
    const m = await drive(p.port, mixed);
    const mixedUpstreamQueries = pr.queries + pw.queries;
    await p.stop();
    const holeNames = h.filter((s) => Number(s.name.slice(1, s.name.indexOf('.'))) % 5 === 0);
    const wrongAnswers = h.filter((s) => s.rcode === 3).length;
    const aaaa = m.filter((s) => s.qtype === 28);
    const a = m.filter((s) => s.qtype === 1);
    const row = {
      server: label,
      wrongPer1000: round((1000 * wrongAnswers) / h.length),
      unanswered: h.filter((s) => s.rcode < 0).length + m.filter((s) => s.rcode < 0).length,
      /** Replies by RCODE over both workloads (-1: none within 3 s). */
      rcodes: [...h, ...m].reduce<Record<string, number>>((acc, s) => ((acc[s.rcode] = (acc[s.rcode] ?? 0) + 1), acc), {}),
      holesMs: lat(holeNames),
      allAMs: lat(h),
      aaaaNodataMs: lat(aaaa.filter((s) => s.rcode === 0 && s.answers === 0)),
      mixedAMs: lat(a),
      mixedAllMs: lat(m),
      /** Upstream queries per client query on the mixed workload, counted at the proxies. */
      mixedFanout: Number((mixedUpstreamQueries / m.length).toFixed(2)),
    };
    rows.push(row);
    process.stderr.write(`${label}: ${row.wrongPer1000} wrong per 1000, AAAA NODATA p50 ${row.aaaaNodataMs.p50} ms p99 ${row.aaaaNodataMs.p99} ms\n`);
  }
  const report = {
    date: new Date().toISOString(),
    setup: `${rightDead ? 'RIGHT UPSTREAM DEAD; ' : ''}two nsd upstreams behind fault proxies: wrong ${wrongMs} ms (+ up to ${wrongMs / 2} ms jitter) lacking every fifth name, right ${rightMs} ms (+ up to ${rightMs / 4} ms) with all ${names}; client concurrency ${concurrency}; no cache`,
    rows,
  };
  const outDir = join(process.cwd(), 'bench', 'results');
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'negative.json'), JSON.stringify(report, null, 2));
  console.log(JSON.stringify(report, null, 2));
} finally {
  for (const p of proxies) await p.close();
  for (const p of procs.reverse()) await p.stop();
  rmSync(dir, { recursive: true, force: true });
}
