// Every listener of one raced: UDP and TCP on each --listen address (the same
// port for both), or the sockets systemd passed; what they bound, and how
// they drain and close.
import { endpointLabel, parseEndpoint, type Endpoint } from '../net/address.js';
import type { Pipeline } from '../pipeline.js';
import type { Logger } from '../log.js';
import { ERROR_CODES, StartupError } from '../errors.js';
import { listenFds, udpFamilyOf } from './systemd.js';
import { UdpListener } from './udp.js';
import { TcpListener, TcpStats, type TcpOptions } from './tcp.js';

/** How a --listen port is shared: see UdpListener's `sharing`. */
export type PortSharing = ConstructorParameters<typeof UdpListener>[3] & string;

export class Listeners {
  private readonly udp: UdpListener[] = [];
  private readonly tcp: TcpListener[] = [];
  /** Client TCP connections shed, over every listener. */
  readonly tcpStats = new TcpStats();
  /** The listen addresses as bound (port 0 resolved). */
  readonly bound: Endpoint[] = [];

  constructor(
    private readonly pipeline: Pipeline,
    private readonly log: Logger,
    private readonly tcpOptions: Omit<TcpOptions, 'shared'>,
  ) {}

  /**
   * Binds UDP, then TCP on the port UDP got, for each address in turn; a
   * failure is a StartupError naming the address (the listeners bound so far
   * stay open: the caller stops them).
   */
  async bind(endpoints: readonly Endpoint[], sharing: PortSharing): Promise<void> {
    const tcpOpts: TcpOptions = { ...this.tcpOptions, shared: sharing !== 'none' };
    for (const ep of endpoints) {
      for (let attempt = 1; ; attempt++) {
        const udp = new UdpListener(ep, this.pipeline, this.log, sharing);
        const tcp = new TcpListener(ep, this.pipeline, tcpOpts, this.log, this.tcpStats);
        try {
          this.udp.push(udp);
          this.tcp.push(tcp);
          const port = await udp.listen(ep.port);
          await tcp.listen(port);
          this.bound.push({ ...ep, port, label: ep.label.replace(/:\d+$/, `:${port}`) });
          break;
        } catch (err) {
          // Port 0: the free UDP port the kernel chose may be taken on TCP (an outgoing connection's port): pick again.
          if (ep.port === 0 && (err as NodeJS.ErrnoException).code === 'EADDRINUSE' && attempt < 10) {
            this.udp.splice(this.udp.indexOf(udp), 1);
            this.tcp.splice(this.tcp.indexOf(tcp), 1);
            udp.close();
            void tcp.close(0);
            continue;
          }
          throw bindError(ep, err as NodeJS.ErrnoException);
        }
      }
    }
  }

  /**
   * --systemd: serve on the sockets systemd passed (UDP or TCP, told apart by
   * /proc), in place of --listen; their addresses go into `bound`.
   */
  async adoptSystemd(): Promise<void> {
    const fds = listenFds();
    if (typeof fds === 'string') throw new StartupError(ERROR_CODES.SYSTEMD, `--systemd: ${fds}`);
    const tcpOpts: TcpOptions = { ...this.tcpOptions, shared: false };
    for (const fd of fds) {
      try {
        const fam = udpFamilyOf(fd);
        const placeholder = parseEndpoint(fam === 6 ? '[::]:0' : '0.0.0.0:0', 53, true);
        let addr: { address: string; port: number };
        if (fam !== null) {
          const udp = new UdpListener(placeholder, this.pipeline, this.log);
          this.udp.push(udp);
          addr = await udp.adopt(fd);
        } else {
          const tcp = new TcpListener(placeholder, this.pipeline, tcpOpts, this.log, this.tcpStats);
          this.tcp.push(tcp);
          addr = await tcp.adopt(fd);
        }
        const ep = parseEndpoint(endpointLabel(addr.address, addr.port), 53, true);
        if (!this.bound.some((b) => b.label === ep.label)) this.bound.push(ep);
      } catch (err) {
        throw new StartupError(ERROR_CODES.SYSTEMD, `--systemd: cannot use descriptor ${fd}: ${(err as Error).message}`);
      }
    }
  }

  /** Client TCP connections open now, over every listener. */
  get tcpConnections(): number {
    return this.tcp.reduce((n, t) => n + t.connections, 0);
  }

  /** TCP connections close after their last reply from now on. */
  drain(): void {
    for (const l of this.tcp) l.drain();
  }

  async close(): Promise<void> {
    await Promise.all(this.tcp.map((l) => l.close(1000)));
    for (const l of this.udp) l.close();
  }
}

function bindError(ep: Endpoint, err: NodeJS.ErrnoException): StartupError {
  if (err.code === 'EACCES') {
    return new StartupError(
      ERROR_CODES.LISTEN,
      `cannot listen on ${ep.label}: permission denied. Ports below 1024 need CAP_NET_BIND_SERVICE: run raced from ` +
        `the systemd unit (deploy/raced.service: DynamicUser=, AmbientCapabilities=CAP_NET_BIND_SERVICE) or with socket ` +
        `activation (--systemd), or start it as root (it binds, then runs as --user, default nobody); ` +
        `or use another port: --listen ${endpointLabel(ep.host, 5353)}`,
    );
  }
  if (err.code === 'EADDRINUSE') return new StartupError(ERROR_CODES.LISTEN, `cannot listen on ${ep.label}: address already in use`);
  if (err.code === 'EADDRNOTAVAIL') return new StartupError(ERROR_CODES.LISTEN, `cannot listen on ${ep.label}: no such local address`);
  return new StartupError(ERROR_CODES.LISTEN, `cannot listen on ${ep.label}: ${err.message}`);
}
