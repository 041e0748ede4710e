// A DoH stand-in (Node's HTTP/2 server over TLS) for what unbound will not do
// on demand: send GOAWAY mid-load, answer with another content type or a
// garbled body. It answers A 192.0.2.1 to every query and counts what it got.
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import dnsPacket from 'dns-packet';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface DohStubOptions {
  key: string;
  cert: string;
  /** After this many streams on a connection: GOAWAY (last stream: that one), answer what it kept, then close. */
  goawayAfter?: number;
  contentType?: string;
  /** 'garbage': a body that is no DNS message. */
  body?: 'answer' | 'garbage';
  delayMs?: number;
  /** Listen on this port (default: a free one). */
  port?: number;
}

export class DohStub {
  /** Streams received, connections accepted, padding-aligned query sizes seen. */
  streams = 0;
  connections = 0;
  readonly sizes: number[] = [];
  readonly ids: number[] = [];
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  private constructor(
    private readonly server: http2.Http2SecureServer,
    readonly port: number,
  ) {}

  static async start(o: DohStubOptions): Promise<DohStub> {
    const server = http2.createSecureServer({ key: o.key, cert: o.cert, allowHTTP1: false, settings: { maxConcurrentStreams: 1000 } });
    const stub = await new Promise<DohStub>((res) => server.listen(o.port ?? 0, '127.0.0.1', () => res(new DohStub(server, (server.address() as AddressInfo).port))));
    server.on('session', (s) => {
      stub.connections++;
      stub.sessions.add(s);
      s.on('close', () => stub.sessions.delete(s));
      let n = 0;
      s.on('stream', (stream) => {
        n++;
        if (o.goawayAfter !== undefined && n === o.goawayAfter) {
          s.goaway(http2.constants.NGHTTP2_NO_ERROR, stream.id);
          // Answer the kept streams, then close: the client must not wait on the refused ones.
          setTimeout(() => s.close(), 50);
        }
      });
    });
    server.on('stream', (stream, headers) => {
      stub.streams++;
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('error', () => {});
      stream.on('end', () => {
        const q = Buffer.concat(chunks);
        if (headers[':path'] !== '/dns-query' || headers[':method'] !== 'POST') {
          stream.respond({ ':status': 404 });
          return stream.end();
        }
        stub.sizes.push(q.length);
        stub.ids.push(q.readUInt16BE(0));
        const pq = dnsPacket.decode(q);
        const reply =
          o.body === 'garbage'
            ? Buffer.from('<html>not dns</html>')
            : dnsPacket.encode({
                type: 'response',
                id: pq.id,
                flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE,
                questions: pq.questions,
                answers: [{ name: pq.questions![0]!.name, type: 'A', class: 'IN', ttl: 60, data: '192.0.2.1' }],
              });
        const send = (): void => {
          if (stream.destroyed) return;
          stream.respond({ ':status': 200, 'content-type': o.contentType ?? 'application/dns-message', 'content-length': reply.length });
          stream.end(reply);
        };
        if (o.delayMs) setTimeout(send, o.delayMs);
        else send();
      });
    });
    return stub;
  }

  /** Stops listening and drops every connection (a server going away). */
  close(): Promise<void> {
    for (const s of this.sessions) s.destroy();
    return new Promise((res) => {
      this.server.close(() => res());
      // Sessions still open would keep close() waiting.
      setTimeout(res, 500).unref();
    });
  }
}

/** dnsdist 1.7 serving DoH on `port` (path /dns-query) and plain DNS on `plainPort`, in front of a plain server on `backendPort`. */
export async function startDnsdist(pki: { dir: string; certFile: string; keyFile: string }, port: number, plainPort: number, backendPort: number): Promise<{ stop(): Promise<void> }> {
  const conf = join(pki.dir, `dnsdist-${port}.conf`);
  writeFileSync(
    conf,
    [
      `setLocal("127.0.0.1:${plainPort}")`,
      // The backend is a stand-in: no health-check queries of its own, no security polling over the network.
      `newServer({address="127.0.0.1:${backendPort}", healthCheckMode="up"})`,
      'setSecurityPollSuffix("")',
      `addDOHLocal("127.0.0.1:${port}", "${pki.certFile}", "${pki.keyFile}", "/dns-query")`,
    ].join('\n') + '\n',
  );
  const child = spawn('dnsdist', ['--supervised', '--disable-syslog', '-C', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout!.on('data', (d: Buffer) => (log += d));
  child.stderr!.on('data', (d: Buffer) => (log += d));
  const t0 = Date.now();
  while (!log.includes('for DoH')) {
    if (child.exitCode !== null || Date.now() - t0 > 10_000) {
      child.kill();
      throw new Error(`dnsdist did not start: ${log}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    stop: () =>
      new Promise<void>((res) => {
        if (child.exitCode !== null) return res();
        child.once('exit', () => res());
        child.kill('SIGTERM');
      }),
  };
}
