// What a fresh source port costs (issue 22, item 5): upstream legs through
// UdpPool with different rotation counts, against an echo responder in its own
// process on 127.0.0.1. Variants run interleaved, round after round, so a
// shared machine's load falls on all of them alike; medians are reported.
// CPU is this process's (user + system) per leg: the pool's side only.
//   node dist/bench/source-ports.js [--legs 20000] [--rounds 5] [--concurrency 100]
import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { UdpPool, type PendingUdp, type UdpSlot } from '../src/upstream/udp-pool.js';
import { parseEndpoint, type Endpoint } from '../src/net/address.js';

const arg = (name: string, def: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const LEGS = arg('legs', 20_000);
const ROUNDS = arg('rounds', 5);
const CONCURRENCY = arg('concurrency', 100);
const VARIANTS = (process.env.VARIANTS ?? "1,16,64,256,1024").split(",").map(Number);

/** Answers every datagram with itself, QR set: the pool matches on ID, address and port only. */
const RESPONDER = `
const s = require('node:dgram').createSocket('udp4');
s.on('message', (m, r) => { m[2] |= 0x80; s.send(m, r.port, r.address); });
s.bind(0, '127.0.0.1', () => process.stdout.write(String(s.address().port) + '\\n'));
`;

async function responder(): Promise<{ port: number; stop: () => void }> {
  const child = spawn(process.execPath, ['-e', RESPONDER], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve) => child.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))));
  return { port, stop: () => child.kill('SIGTERM') };
}

interface Result {
  cpuUsPerLeg: number;
  legsPerSec: number;
  ports: number;
}

function run(ep: Endpoint, usesPerSocket: number): Promise<Result> {
  const pool = new UdpPool({ usesPerSocket, maxAgeMs: 1000 });
  const query = Buffer.from([0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0x78, 0, 0, 1, 0, 1]);
  let sent = 0;
  let done = 0;
  return new Promise((resolve) => {
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const next = (): void => {
      if (sent >= LEGS) return;
      sent++;
      const packet = Buffer.from(query);
      let slot: UdpSlot | null = null;
      let id = 0;
      const leg: PendingUdp = {
        endpoint: ep,
        onDatagram: () => {
          slot!.release(id, leg);
          if (++done === LEGS) finish();
          else next();
        },
        onForeign: () => {},
        onSocketError: () => {
          if (++done === LEGS) finish();
          else next();
        },
      };
      slot = pool.send(leg, packet, performance.now());
      id = packet.readUInt16BE(0);
    };
    const finish = (): void => {
      const wall = performance.now() - t0;
      const c = process.cpuUsage(cpu0);
      pool.close();
      resolve({ cpuUsPerLeg: (c.user + c.system) / LEGS, legsPerSec: (LEGS / wall) * 1000, ports: pool.opened });
    };
    for (let i = 0; i < CONCURRENCY; i++) next();
  });
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const r = await responder();
const ep = parseEndpoint(`127.0.0.1:${r.port}`, 53);
const results = new Map<number, Result[]>(VARIANTS.map((v) => [v, []]));
await run(ep, 1024); // warm-up, not counted
for (let round = 0; round < ROUNDS; round++) {
  for (const v of round % 2 === 0 ? VARIANTS : [...VARIANTS].reverse()) results.get(v)!.push(await run(ep, v));
}
r.stop();
console.log(`${LEGS} legs per run, ${CONCURRENCY} in flight, ${ROUNDS} rounds interleaved; medians`);
console.log('legs/port  CPU µs/leg  legs/s   ports/run');
for (const v of VARIANTS) {
  const rs = results.get(v)!;
  console.log(
    `${String(v).padStart(9)}  ${median(rs.map((x) => x.cpuUsPerLeg)).toFixed(1).padStart(10)}  ${Math.round(median(rs.map((x) => x.legsPerSec))).toString().padStart(7)}  ${String(median(rs.map((x) => x.ports))).padStart(9)}`,
  );
}
