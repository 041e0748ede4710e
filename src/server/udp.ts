// UDP listener: raw datagrams in, replies out to the same address and port.
import dgram from 'node:dgram';
import { adoptedDualStack, clientAddress, type Endpoint } from '../net/address.js';
import { literalLookup } from '../net/lookup.js';
import type { Pipeline } from '../pipeline.js';
import type { Client } from '../client.js';
import type { Logger } from '../log.js';

/** A UDP client: one small object per query, no closure. */
class UdpClient implements Client {
  readonly transport = 'udp' as const;
  readonly address: string;
  constructor(
    private readonly sock: dgram.Socket,
    /** The source as the socket gave it; replies go there. */
    private readonly source: string,
    readonly port: number,
    dualStack: boolean,
  ) {
    this.address = clientAddress(source, dualStack);
  }

  respond(reply: Buffer): void {
    this.sock.send(reply, this.port, this.source);
  }
}

export class UdpListener {
  readonly socket: dgram.Socket;
  /** Whether IPv4 clients arrive here as ::ffff:a.b.c.d; never on raced's own sockets (IPv6 ones are IPv6-only). */
  private dualStack = false;

  /**
   * `sharing`: 'none' for one process; 'cluster' for a cluster worker on Node
   * 20, where the primary owns the socket and the workers share it;
   * 'reuseport' for a worker that binds its own socket (Node >= 22.12).
   */
  constructor(
    readonly endpoint: Endpoint,
    pipeline: Pipeline,
    log: Logger,
    private readonly sharing: 'none' | 'cluster' | 'reuseport' = 'none',
  ) {
    this.socket = dgram.createSocket({
      type: endpoint.family === 4 ? 'udp4' : 'udp6',
      ipv6Only: endpoint.family === 6,
      ...(sharing === 'reuseport' ? { reusePort: true } : {}),
      recvBufferSize: 1 << 22,
      sendBufferSize: 1 << 22,
      lookup: literalLookup,
    });
    const sock = this.socket;
    // While raced stops, the pipeline answers new queries REFUSED and the socket stays open for the replies still owed.
    sock.on('message', (msg, rinfo) => {
      try {
        pipeline.handle(msg, new UdpClient(sock, rinfo.address, rinfo.port, this.dualStack));
      } catch (err) {
        // The last resort: this datagram is dropped, the socket keeps serving.
        pipeline.guard.fault('udp', err, rinfo.address);
      }
    });
    // A failed send (e.g. the client's port went away) must not stop the listener.
    sock.on('error', (err) => log.warn(`udp ${endpoint.label}: ${err.message}`));
  }

  /** Binds; rejects with the socket error (EACCES, EADDRINUSE) so the caller can explain it. */
  listen(port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.socket.once('error', onError);
      this.socket.bind({ address: this.endpoint.host, port, exclusive: this.sharing !== 'cluster' }, () => {
        this.socket.off('error', onError);
        resolve(this.socket.address().port);
      });
    });
  }

  /** Adopts a socket passed by systemd; resolves with the address it is bound to. */
  adopt(fd: number): Promise<{ address: string; port: number }> {
    return new Promise((resolve, reject) => {
      this.socket.once('error', reject);
      this.socket.bind({ fd }, () => {
        this.socket.off('error', reject);
        const a = this.socket.address();
        this.dualStack = adoptedDualStack(a.family, a.address);
        resolve(a);
      });
    });
  }

  close(): void {
    try {
      this.socket.close();
    } catch {
      // already closed
    }
  }
}
