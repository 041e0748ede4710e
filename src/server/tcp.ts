// TCP listener per RFC 7766: 2-byte framing, many queries per connection,
// replies in whatever order they are ready, an idle timeout that only a
// complete query or a reply resets (so a half-sent query cannot pin a
// connection), and a cap on connections.
import net from 'node:net';
import type { Endpoint } from '../net/address.js';
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
  /** Open connections and the replies each still owes. */
  private readonly conns = new Map<net.Socket, { pending: number }>();
  private readonly shared: boolean;
  /** raced is stopping: each connection is closed after its last reply. */
  private draining = false;

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
    const state = { pending: 0 };
    this.conns.set(sock, state);
    const reader = new FrameReader();
    let ended = false;
    const idle = setTimeout(() => sock.destroy(), opts.idleTimeoutMs);
    const client: Client = {
      transport: 'tcp',
      address: sock.remoteAddress ?? '',
      port: sock.remotePort ?? 0,
      respond: (reply) => {
        state.pending--;
        idle.refresh();
        if (!sock.destroyed && sock.writable) sock.write(frame(reply));
        if ((ended || this.draining) && state.pending === 0) sock.end();
      },
    };
    sock.on('data', (chunk) => {
      reader.push(chunk, (msg) => {
        idle.refresh();
        state.pending++;
        pipeline.handle(msg, client);
      });
    });
    sock.on('end', () => {
      // The client is done sending; finish the replies it is owed, then close.
      ended = true;
      if (state.pending === 0) sock.end();
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
        resolve(typeof a === 'object' && a ? { address: a.address, port: a.port } : { address: '?', port: 0 });
      });
    });
  }

  /**
   * Drain: stops accepting; a connection that owes no reply is closed now,
   * the others right after their last reply (RFC 7766 §6.2.3: the server may
   * close; a client sends what it still has on a new connection elsewhere).
   */
  drain(): void {
    this.draining = true;
    this.server.close();
    for (const [sock, st] of this.conns) if (st.pending === 0) sock.end();
  }

  /**
   * Ends every connection (replies already written still go out first) and
   * resolves once all are closed; any still open after `ms` are destroyed.
   */
  close(ms: number): Promise<void> {
    this.draining = true;
    this.server.close();
    if (this.conns.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const socks = [...this.conns.keys()];
      let left = socks.length;
      const t = setTimeout(() => {
        for (const s of socks) s.destroy();
      }, ms);
      t.unref();
      for (const s of socks) {
        s.once('close', () => {
          if (--left === 0) {
            clearTimeout(t);
            resolve();
          }
        });
        if (ms <= 0) s.destroy();
        else s.end();
      }
    });
  }
}
