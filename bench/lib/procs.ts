// Processes a benchmark runs: nsd upstreams serving a generated zone, dnsmasq
// and raced as the servers under test, dnsperf as the load. Everything on
// 127.0.0.1, every process started here is stopped here by PID.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import dgram from 'node:dgram';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import dnsPacket from 'dns-packet';

export const RACED_CLI = fileURLToPath(new URL('../../src/main.js', import.meta.url));

export function need(cmd: string, pkg: string): void {
  if (spawnSync('sh', ['-c', `command -v ${cmd}`]).status !== 0) {
    throw new Error(`${cmd} is not installed: apt-get install -y ${pkg}`);
  }
}

/** A port free on 127.0.0.1 for both UDP and TCP right now (servers here bind both). */
export async function freePort(): Promise<number> {
  for (;;) {
    const s = dgram.createSocket('udp4');
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
    const p = s.address().port;
    await new Promise<void>((r) => s.close(() => r()));
    const tcpFree = await new Promise<boolean>((r) => {
      const srv = net.createServer();
      srv.once('error', () => r(false));
      srv.listen(p, '127.0.0.1', () => srv.close(() => r(true)));
    });
    if (tcpFree) return p;
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A zone of `n` A records h0..h{n-1}.<origin> and the dnsperf query file for it. */
export function writeZone(dir: string, origin: string, n: number): { zoneFile: string; queryFile: string } {
  mkdirSync(dir, { recursive: true });
  const lines = [
    `$ORIGIN ${origin}.`,
    '$TTL 3600',
    `@ IN SOA ns.${origin}. admin.${origin}. 1 3600 600 86400 300`,
    `@ IN NS ns.${origin}.`,
    'ns IN A 127.0.0.1',
  ];
  const queries: string[] = [];
  for (let i = 0; i < n; i++) {
    lines.push(`h${i} IN A 10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
    queries.push(`h${i}.${origin} A`);
  }
  const zoneFile = join(dir, `${origin}.zone`);
  const queryFile = join(dir, 'queries.txt');
  writeFileSync(zoneFile, lines.join('\n') + '\n');
  writeFileSync(queryFile, queries.join('\n') + '\n');
  return { zoneFile, queryFile };
}

export interface Proc {
  name: string;
  child: ChildProcess;
  port: number;
  stop(): Promise<void>;
}

/** Children started and not yet exited: stopped when the bench itself is (Ctrl-C, kill), so none outlives it. */
const live = new Set<ChildProcess>();
let trapped = false;

function stopChildrenOnSignal(): void {
  if (trapped) return;
  trapped = true;
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      for (const c of live) c.kill('SIGTERM');
      process.exit(128 + (sig === 'SIGINT' ? 2 : sig === 'SIGTERM' ? 15 : 1));
    });
  }
}

/** `child` is stopped with the bench if a signal ends it first. */
function keep(child: ChildProcess): void {
  live.add(child);
  child.once('exit', () => live.delete(child));
  stopChildrenOnSignal();
}

export function track(name: string, child: ChildProcess, port: number): Proc {
  keep(child);
  let log = '';
  child.stderr?.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-4000)));
  child.stdout?.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-4000)));
  child.on('exit', (code, sig) => {
    if (code && code !== 0) process.stderr.write(`${name} exited ${code ?? sig}: ${log}\n`);
  });
  return {
    name,
    child,
    port,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const done = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await done;
      clearTimeout(t);
    },
  };
}

/** Waits for `p` to answer; if it never does, stops it (so no process outlives a failed start) and throws. */
async function ready(p: Proc): Promise<Proc> {
  try {
    await waitDns(p.port);
    return p;
  } catch (err) {
    await p.stop();
    throw err;
  }
}

/** Waits until something answers DNS on the port (h0.bench.test A, the first name of the zone). */
export async function waitDns(port: number, ms = 10000): Promise<void> {
  const q = dnsPacket.encode({ type: 'query', id: 1, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name: 'h0.bench.test', type: 'A' }] });
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = dgram.createSocket('udp4');
      const t = setTimeout(() => {
        s.close();
        resolve(false);
      }, 200);
      s.on('message', () => {
        clearTimeout(t);
        s.close();
        resolve(true);
      });
      s.send(q, port, '127.0.0.1');
    });
    if (ok) return;
    await sleep(100);
  }
  throw new Error(`nothing answers on 127.0.0.1:${port}`);
}

function pinned(cpu: string | null, cmd: string, args: string[]): [string, string[]] {
  return cpu === null ? [cmd, args] : ['taskset', ['-c', cpu, cmd, ...args]];
}

/** `serverLines`: extra lines for nsd.conf's server section (e.g. `rrl-ratelimit: 0`). */
export async function startNsd(dir: string, origin: string, zoneFile: string, cpu: string | null, serverLines: string[] = []): Promise<Proc> {
  need('nsd', 'nsd');
  const port = await freePort();
  const d = join(dir, `nsd-${port}`);
  mkdirSync(d, { recursive: true });
  const conf = join(d, 'nsd.conf');
  writeFileSync(
    conf,
    [
      'server:',
      `  ip-address: 127.0.0.1@${port}`,
      `  port: ${port}`,
      '  username: ""',
      `  zonesdir: "${d}"`,
      `  pidfile: "${d}/nsd.pid"`,
      `  xfrdfile: "${d}/xfrd.state"`,
      `  zonelistfile: "${d}/zone.list"`,
      `  logfile: "${d}/nsd.log"`,
      '  database: ""',
      '  server-count: 1',
      '  verbosity: 0',
      '  hide-version: yes',
      ...serverLines.map((l) => `  ${l}`),
      'remote-control:',
      '  control-enable: no',
      'zone:',
      `  name: ${origin}`,
      `  zonefile: "${zoneFile}"`,
      '',
    ].join('\n'),
  );
  const [cmd, args] = pinned(cpu, 'nsd', ['-d', '-c', conf]);
  return ready(track(`nsd:${port}`, spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] }), port));
}

export async function startDnsmasq(upstreams: number[], extra: string[], cpu: string | null): Promise<Proc> {
  need('dnsmasq', 'dnsmasq');
  const port = await freePort();
  const args = [
    '--keep-in-foreground',
    '--no-resolv',
    '--no-hosts',
    '--no-poll',
    '--pid-file=',
    '--user=root',
    '--listen-address=127.0.0.1',
    '--bind-interfaces',
    `--port=${port}`,
    ...upstreams.map((p) => `--server=127.0.0.1#${p}`),
    ...extra,
  ];
  const [cmd, a] = pinned(cpu, 'dnsmasq', args);
  return ready(track(`dnsmasq:${port}`, spawn(cmd, a, { stdio: ['ignore', 'pipe', 'pipe'] }), port));
}

/**
 * SmartDNS, the closest racing peer, as issue 18 asks: every server asked,
 * the first reply taken (`response-mode fastest-response`), no speed check,
 * TTLs untouched, no cache, no prefetch or serve-expired, and no AAAA query
 * beside each A (dualstack selection off), so what the stand-ins count is its racing.
 */
export async function startSmartdns(dir: string, upstreams: number[], cpu: string | null): Promise<Proc> {
  need('smartdns', 'smartdns');
  const port = await freePort();
  const d = join(dir, `smartdns-${port}`);
  mkdirSync(d, { recursive: true });
  const conf = join(d, 'smartdns.conf');
  writeFileSync(
    conf,
    [
      `bind 127.0.0.1:${port}`,
      `bind-tcp 127.0.0.1:${port}`,
      'cache-size 0',
      'cache-persist no',
      'prefetch-domain no',
      'serve-expired no',
      'response-mode fastest-response',
      'speed-check-mode none',
      'dualstack-ip-selection no',
      'rr-ttl-min 0',
      'log-level error',
      `log-file ${d}/smartdns.log`,
      ...upstreams.map((p) => `server 127.0.0.1:${p}`),
      '',
    ].join('\n'),
  );
  const [cmd, args] = pinned(cpu, 'smartdns', ['-f', '-c', conf, '-p', '-']);
  return ready(track(`smartdns:${port}`, spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] }), port));
}

/** `cli`: another build's dist/src/main.js (dist/src/cli.js before the bin split) (bench/tradeoff-cost.ts runs two side by side). */
export async function startRaced(upstreams: number[], extra: string[], cpu: string | null, cli = RACED_CLI): Promise<Proc> {
  const port = await freePort();
  const args = ['--max-semi-space-size=4', cli, '--listen', `127.0.0.1:${port}`, '--log-level', 'warn', ...upstreams.map((p) => `--server=127.0.0.1:${p}`), ...extra];
  const [cmd, a] = pinned(cpu, process.execPath, args);
  return ready(track(`raced:${port}`, spawn(cmd, a, { stdio: ['ignore', 'pipe', 'pipe'] }), port));
}

/** A Node script of bench/ (a ceiling) on `cpu`, answering DNS on a free port passed as its first argument. */
export async function startNodeScript(name: string, script: string, args: string[], cpu: string | null): Promise<Proc> {
  const port = await freePort();
  const [cmd, a] = pinned(cpu, process.execPath, ['--max-semi-space-size=4', script, String(port), ...args]);
  return ready(track(`${name}:${port}`, spawn(cmd, a, { stdio: ['ignore', 'pipe', 'pipe'] }), port));
}

export interface PerfResult {
  qps: number;
  sent: number;
  completed: number;
  lost: number;
  avgLatencyMs: number;
  /** Per-query latencies (ms) when run with -v. */
  latencies?: number[];
  /** Replies by RCODE name when run with -v. */
  rcodes?: Record<string, number>;
  command: string;
}

/** One dnsperf run against 127.0.0.1:port. `rate`: fixed QPS (-Q), else saturation. */
export async function dnsperf(
  port: number,
  queryFile: string,
  seconds: number,
  opts: { rate?: number; outstanding?: number; cpu?: string | null; verbose?: boolean; once?: boolean } = {},
): Promise<PerfResult> {
  need('dnsperf', 'dnsperf');
  // once: run through the query file a single time (-n 1), `seconds` then only bounds the wait.
  const args = ['-s', '127.0.0.1', '-p', String(port), '-d', queryFile, ...(opts.once ? ['-n', '1'] : ['-l', String(seconds)]), '-q', String(opts.outstanding ?? 100), '-t', '2'];
  if (opts.rate) args.push('-Q', String(opts.rate));
  if (opts.verbose) args.push('-v');
  const [cmd, a] = pinned(opts.cpu ?? null, 'dnsperf', args);
  const out = await new Promise<string>((resolve, reject) => {
    const c = spawn(cmd, a, { stdio: ['ignore', 'pipe', 'pipe'] });
    keep(c);
    let s = '';
    c.stdout.on('data', (d: Buffer) => (s += d.toString()));
    c.stderr.on('data', (d: Buffer) => (s += d.toString()));
    const t = setTimeout(() => c.kill('SIGKILL'), (seconds + 30) * 1000);
    c.on('exit', () => {
      clearTimeout(t);
      resolve(s);
    });
    c.on('error', reject);
  });
  return { ...parseDnsperf(out), command: [cmd, ...a].join(' ') };
}

export function parseDnsperf(out: string): Omit<PerfResult, 'command'> {
  const num = (re: RegExp): number => {
    const m = re.exec(out);
    return m ? Number(m[1]) : NaN;
  };
  const r: Omit<PerfResult, 'command'> = {
    qps: num(/Queries per second:\s+([\d.]+)/),
    sent: num(/Queries sent:\s+(\d+)/),
    completed: num(/Queries completed:\s+(\d+)/),
    lost: num(/Queries lost:\s+(\d+)/),
    avgLatencyMs: num(/Average Latency \(s\):\s+([\d.]+)/) * 1000,
  };
  // -v lines: "> NOERROR h12.bench.test A 0.000123"
  const lat: number[] = [];
  // dnsperf prints seconds with microsecond resolution: keep ms with that resolution, no float noise.
  const rcodes: Record<string, number> = {};
  for (const m of out.matchAll(/^> (\S+) \S+ \S+ ([\d.]+)$/gm)) {
    lat.push(Math.round(Number(m[2]) * 1e6) / 1000);
    rcodes[m[1]!] = (rcodes[m[1]!] ?? 0) + 1;
  }
  if (lat.length) {
    r.latencies = lat;
    r.rcodes = rcodes;
  }
  return r;
}
