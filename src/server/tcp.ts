// TCP listener per RFC 7766: 2-byte framing, many queries per connection,
// replies in whatever order they are ready, an idle timeout that only a
// complete query or a reply resets (so a half-sent query cannot pin a
// connection), and a cap on connections.
import net from 'node:net';
import { adoptedDualStack, clientAddress, type Endpoint } from '../net/address.js';
import { FrameReader, frame } from '../net/framing.js';
import type { Client, Pipeline } from '../pipeline.js';
import type { Logger } from '../log.js';

export interface TcpOptions {
  idleTimeoutMs: number;
  maxConnections: number;
  /** A cluster worker: the primary accepts and hands connections out. */
  shared: boolean;
}

export class TcpListener {
  readonly server: net.Server;
  private readonly conns = new Set<net.Socket>();
  private readonly shared: boolean;
  /** See UdpListener: only an adopted socket can be dual-stack. */
  private dualStack = false;

  constructor(
    readonly endpoint: Endpoint,
    pipeline: Pipeline,
    opts: TcpOptions,
    log: Logger,
  ) {
    this.server = net.createServer({ noDelay: true, allowHalfOpen: true }, (sock) => this.accept(sock, pipeline, opts));
    this.server.maxConnections = opts.maxConnections;
    this.shared = opts.shared;
    this.server.on('error', (err) => log.warn(`tcp ${endpoint.label}: ${err.message}`));
  }

  private accept(sock: net.Socket, pipeline: Pipeline, opts: TcpOptions): void {
    this.conns.add(sock);
    const reader = new FrameReader();
    let pending = 0;
    let ended = false;
    const idle = setTimeout(() => sock.destroy(), opts.idleTimeoutMs);
    const client: Client = {
      transport: 'tcp',
      address: clientAddress(sock.remoteAddress ?? '', this.dualStack),
      port: sock.remotePort ?? 0,
      respond: (reply) => {
        pending--;
        idle.refresh();
        if (!sock.destroyed && sock.writable) sock.write(frame(reply));
        if (ended && pending === 0) sock.end();
      },
    };
    sock.on('data', (chunk) => {
      reader.push(chunk, (msg) => {
        idle.refresh();
        pending++;
        try {
          pipeline.handle(msg, client);
        } catch (err) {
          // The last resort: this query is dropped, the connection and the listener live on.
          pending--;
          pipeline.guard.fault('tcp', err, client.address);
        }
      });
    });
    sock.on('end', () => {
      // The client is done sending; finish the replies it is owed, then close.
      ended = true;
      if (pending === 0) sock.end();
    });
    sock.on('error', () => sock.destroy());
    sock.on('close', () => {
      clearTimeout(idle);
      this.conns.delete(sock);
    });
  }

  listen(port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.server.once('error', onError);
      this.server.listen({ host: this.endpoint.host, port, exclusive: !this.shared, ipv6Only: this.endpoint.family === 6 }, () => {
        this.server.off('error', onError);
        const addr = this.server.address();
        resolve(typeof addr === 'object' && addr ? addr.port : port);
      });
    });
  }

  /** Adopts a listening socket passed by systemd. */
  adopt(fd: number): Promise<{ address: string; port: number }> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen({ fd }, () => {
        this.server.off('error', reject);
        const a = this.server.address();
        if (typeof a === 'object' && a) this.dualStack = adoptedDualStack(a.family, a.address);
        resolve(typeof a === 'object' && a ? { address: a.address, port: a.port } : { address: '?', port: 0 });
      });
    });
  }

  /** Stops accepting; open connections end after `graceMs`. */
  close(graceMs: number): void {
    this.server.close();
    const t = setTimeout(() => {
      for (const s of this.conns) s.destroy();
    }, graceMs);
    t.unref();
  }
}
