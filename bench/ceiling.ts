// The Node ceiling for a cache hit on this machine: a bare UDP responder that
// forwards a miss once to an upstream, then answers every repeat with a Map
// lookup, a copy and an ID patch. No checks, no TTLs, no EDNS handling.
//   node dist/bench/ceiling.js LISTEN_PORT UPSTREAM_PORT
import dgram from 'node:dgram';

const [listenPort, upstreamPort] = process.argv.slice(2).map(Number);
const answers = new Map<string, Buffer>();
const waiting = new Map<string, { port: number; address: string; id: number }[]>();
const server = dgram.createSocket('udp4');
const upstream = dgram.createSocket('udp4');

server.on('message', (msg, rinfo) => {
  if (msg.length < 12) return;
  const key = msg.toString('latin1', 12);
  const hit = answers.get(key);
  if (hit !== undefined) {
    const out = Buffer.allocUnsafe(hit.length);
    hit.copy(out);
    out[0] = msg[0]!;
    out[1] = msg[1]!;
    server.send(out, rinfo.port, rinfo.address);
    return;
  }
  const list = waiting.get(key);
  const w = { port: rinfo.port, address: rinfo.address, id: msg.readUInt16BE(0) };
  if (list) return void list.push(w);
  waiting.set(key, [w]);
  upstream.send(msg, upstreamPort!, '127.0.0.1');
});

upstream.on('message', (msg) => {
  const key = msg.toString('latin1', 12, 12 + questionLength(msg));
  answers.set(key, msg);
  for (const w of waiting.get(key) ?? []) {
    const out = Buffer.from(msg);
    out.writeUInt16BE(w.id, 0);
    server.send(out, w.port, w.address);
  }
  waiting.delete(key);
});

function questionLength(msg: Buffer): number {
  let off = 12;
  while (msg[off]! !== 0) off += msg[off]! + 1;
  return off + 5 - 12;
}

server.bind(listenPort!, '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
