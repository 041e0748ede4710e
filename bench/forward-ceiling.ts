// The Node ceiling for the forward path on this machine: a bare forwarder
// that sends each query to every upstream on one connected socket each,
// answers with the first reply and drops the rest. No checks, no random IDs
// or ports, no timers, no counters: only the datagrams raced must move
// (one in, one out and one back per upstream, one out to the client).
//   node dist/bench/forward-ceiling.js LISTEN_PORT UPSTREAM_PORT...
import dgram from 'node:dgram';
import { literalLookup } from '../src/net/lookup.js';

const [listenPort, ...upstreamPorts] = process.argv.slice(2).map(Number);

interface Waiting {
  id: number;
  port: number;
  address: string;
  left: number;
  answered: boolean;
}

const waiting = new Map<number, Waiting>();
let nextId = 0;
const server = dgram.createSocket({ type: 'udp4', lookup: literalLookup, recvBufferSize: 1 << 22 });

const upstreams = upstreamPorts.map((port) => {
  const s = dgram.createSocket({ type: 'udp4', lookup: literalLookup, recvBufferSize: 1 << 22 });
  s.bind(0);
  s.connect(port, '127.0.0.1');
  s.on('message', (msg) => {
    const id = msg.readUInt16BE(0);
    const w = waiting.get(id);
    if (w === undefined) return;
    if (--w.left === 0) waiting.delete(id);
    if (w.answered) return;
    w.answered = true;
    msg.writeUInt16BE(w.id, 0);
    server.send(msg, w.port, w.address);
  });
  return s;
});

server.on('message', (msg, rinfo) => {
  if (msg.length < 12) return;
  nextId = (nextId + 1) & 0xffff;
  waiting.set(nextId, { id: msg.readUInt16BE(0), port: rinfo.port, address: rinfo.address, left: upstreams.length, answered: false });
  for (const s of upstreams) {
    const out = Buffer.from(msg);
    out.writeUInt16BE(nextId, 0);
    s.send(out);
  }
});

server.bind(listenPort!, '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
