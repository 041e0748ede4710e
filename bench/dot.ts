// What DNS over TLS and over HTTPS cost raced at a steady rate: handshakes
// per 10,000 queries (target: about the pool size, not the query count) and
// the p50/p99 latency a tls:// or https:// upstream adds over a plain tcp://
// one, all pooled, all to the same unbound; a UDP upstream for reference.
// Interleaved runs, medians.
//   node dist/bench/dot.js [--seconds N] [--runs N] [--rate QPS] [--pool N]
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { numArg } from './lib/args.js';
import { dnsperf, freePort, startRaced, writeZone, type Proc } from './lib/procs.js';
import { median, percentile } from './lib/stats.js';
import { makePki, startUnbound } from './lib/dot.js';
import { parseMetrics } from '../src/status.js';

const seconds = numArg('--seconds', 10);
const runs = numArg('--runs', 3);
const rate = numArg('--rate', 2000);
const pool = numArg('--pool', 2);
const MODES = ['udp', 'tcp', 'tls', 'https'] as const;
type Mode = (typeof MODES)[number];

interface Sample {
  qps: number;
  lost: number;
  p50: number;
  p99: number;
  upstreamQueries: number;
  handshakes: number;
  resumed: number;
  connections: number;
}

const dir = mkdtempSync(join(tmpdir(), 'raced-dot-'));
const procs: Proc[] = [];
try {
  const pki = makePki(dir);
  const { zoneFile, queryFile } = writeZone(dir, 'bench.test', 1000);
  const ub = await startUnbound(
    pki,
    { tlsPort: await freePort(), plainPort: await freePort(), httpsPort: await freePort(), authZone: { name: 'bench.test', file: zoneFile } },
    '0',
  );
  procs.push(ub);
  const servers: Record<Mode, string[]> = {
    udp: ['--server', `127.0.0.1:${ub.plainPort}`],
    tcp: ['--server', `tcp://127.0.0.1:${ub.plainPort}`],
    tls: ['--server', `tls://dns.test@127.0.0.1:${ub.tlsPort}`, '--tls-ca', pki.caFile],
    https: ['--server', `https://dns.test@127.0.0.1:${ub.httpsPort}`, '--tls-ca', pki.caFile],
  };
  const samples: Record<Mode, Sample[]> = { udp: [], tcp: [], tls: [], https: [] };
  for (let run = 0; run < runs; run++) {
    for (const mode of MODES) {
      const mport = await freePort();
      const p = await startRaced([], [...servers[mode], '--cache-size', '0', '--tls-pool', String(pool), '--metrics-listen', `127.0.0.1:${mport}`], '1');
      try {
        const r = await dnsperf(p.port, queryFile, seconds, { rate, cpu: '0', verbose: true });
        const m = parseMetrics(await (await fetch(`http://127.0.0.1:${mport}/metrics`)).text());
        const v = (name: string): number => m.filter((s) => s.name === name).reduce((a, s) => a + s.value, 0);
        const lat = r.latencies ?? [];
        const s: Sample = {
          qps: r.qps,
          lost: r.lost,
          p50: percentile(lat, 50),
          p99: percentile(lat, 99),
          upstreamQueries: v('raced_upstream_queries_total'),
          handshakes: v('raced_upstream_tls_handshakes_total'),
          resumed: v('raced_upstream_tls_resumed_total'),
          connections: v('raced_upstream_connections_opened_total'),
        };
        samples[mode].push(s);
        process.stderr.write(
          `run ${run + 1}/${runs} ${mode}: ${s.qps.toFixed(0)} QPS, p50 ${s.p50.toFixed(3)} ms, p99 ${s.p99.toFixed(3)} ms, ` +
            `${s.connections} connections, ${s.handshakes} handshakes (${s.resumed} resumed) for ${s.upstreamQueries} queries\n`,
        );
      } finally {
        await p.stop();
      }
    }
  }
  const med = (mode: Mode, k: keyof Sample): number => median(samples[mode].map((s) => s[k]));
  const summary = Object.fromEntries(
    MODES.map((mode) => [
      mode,
      {
        p50Ms: med(mode, 'p50'),
        p99Ms: med(mode, 'p99'),
        qps: Math.round(med(mode, 'qps')),
        connections: med(mode, 'connections'),
        handshakes: med(mode, 'handshakes'),
        handshakesPer10k: Number(((med(mode, 'handshakes') / med(mode, 'upstreamQueries')) * 10_000).toFixed(2)),
      },
    ]),
  );
  const tls = summary.tls!;
  const tcp = summary.tcp!;
  const https = summary.https!;
  const report = {
    date: new Date().toISOString(),
    seconds,
    runs,
    rate,
    pool,
    summary,
    tlsOverTcp: {
      p50AddedMs: Number((tls.p50Ms - tcp.p50Ms).toFixed(3)),
      p99AddedMs: Number((tls.p99Ms - tcp.p99Ms).toFixed(3)),
      p50Ratio: Number((tls.p50Ms / tcp.p50Ms).toFixed(2)),
      p99Ratio: Number((tls.p99Ms / tcp.p99Ms).toFixed(2)),
    },
    httpsOverTcp: {
      p50AddedMs: Number((https.p50Ms - tcp.p50Ms).toFixed(3)),
      p99AddedMs: Number((https.p99Ms - tcp.p99Ms).toFixed(3)),
    },
    samples,
  };
  const outDir = join(process.cwd(), 'bench', 'results');
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'dot.json'), JSON.stringify(report, null, 2));
  console.log(JSON.stringify({ ...report, samples: undefined }, null, 2));
} finally {
  for (const p of procs.reverse()) await p.stop();
  rmSync(dir, { recursive: true, force: true });
}
