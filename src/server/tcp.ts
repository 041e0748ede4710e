// TCP listener per RFC 7766: 2-byte framing, many queries per connection,
// replies in whatever order they are ready. It cannot be starved: idle,
// half-sent and never-reading connections are closed on their own clocks,
// and at a cap the connection that holds the least (idle longest, or a
// partial query) makes room for a new one instead of the new one being
// refused. One sweep timer per listener checks every connection's clocks.
import net from 'node:net';
import { adoptedDualStack, clientAddress, type Endpoint } from '../net/address.js';
import { FrameReader, frame } from '../net/framing.js';
import type { Pipeline } from '../pipeline.js';
import type { Client } from '../client.js';
import type { Logger } from '../log.js';

export interface TcpOptions {
  idleTimeoutMs: number;
  maxConnections: number;
  /** Connections from one client address at most (--max-tcp-per-client). */
  maxPerClient: number;
  /** A cluster worker: the primary accepts and hands connections out. */
  shared: boolean;
}

/** A query begun and not finished this long closes the connection (shorter than any idle timeout). */
export const PARTIAL_QUERY_MS = 2000;
/** Reply bytes queued for a client that does not read, past which raced stops reading its queries. */
export const MAX_WRITE_QUEUE = 128 * 1024;
/** A connection whose replies stay queued past MAX_WRITE_QUEUE this long is closed. */
export const STALLED_MS = 10_000;
const SWEEP_MS = 250;

export const SHED_REASONS = ['cap', 'per_client', 'partial', 'idle', 'stalled', 'refused'] as const;
export type ShedReason = (typeof SHED_REASONS)[number];

/** Connections raced closed (or would not take), by why; shared by every TCP listener. */
export class TcpStats {
  readonly shed: Record<ShedReason, number> = { cap: 0, per_client: 0, partial: 0, idle: 0, stalled: 0, refused: 0 };
}

class Conn {
  readonly reader = new FrameReader();
  /** Queries handed to the pipeline and not yet answered. */
  pending = 0;
  ended = false;
  /** Last complete query or reply. */
  active: number;
  /** When the unfinished query in the reader began; 0: none. */
  partialSince = 0;
  /** When reading stopped because replies piled up; 0: reading. */
  blockedSince = 0;

  constructor(
    readonly sock: net.Socket,
    readonly address: string,
    now: number,
  ) {
    this.active = now;
  }

  /** What shedding takes first: a partial query, then the longest idle; never one with queries out. */
  get sheddable(): boolean {
    return this.pending === 0;
  }
}

export class TcpListener {
  readonly server: net.Server;
  private readonly conns = new Set<Conn>();
  private readonly perClient = new Map<string, number>();
  private readonly shared: boolean;
  private readonly sweeper: NodeJS.Timeout;
  /** raced is stopping: each connection is closed after its last reply. */
  private draining = false;
  /** See UdpListener: only an adopted socket can be dual-stack. */
  private dualStack = false;

  constructor(
    readonly endpoint: Endpoint,
    private readonly pipeline: Pipeline,
    private readonly opts: TcpOptions,
    log: Logger,
    readonly stats: TcpStats = new TcpStats(),
  ) {
    this.server = net.createServer({ noDelay: true, allowHalfOpen: true }, (sock) => this.accept(sock));
    this.shared = opts.shared;
    this.server.on('error', (err) => log.warn(`tcp ${endpoint.label}: ${err.message}`));
    this.sweeper = setInterval(() => this.sweep(Date.now()), SWEEP_MS);
    this.sweeper.unref();
  }

  get connections(): number {
    return this.conns.size;
  }

  private accept(sock: net.Socket): void {
    const now = Date.now();
    const address = clientAddress(sock.remoteAddress ?? '', this.dualStack);
    if ((this.perClient.get(address) ?? 0) >= this.opts.maxPerClient && !this.shed(now, address, 'per_client')) {
      this.stats.shed.refused++;
      return void sock.destroy();
    }
    if (this.conns.size >= this.opts.maxConnections && !this.shed(now, null, 'cap')) {
      this.stats.shed.refused++;
      return void sock.destroy();
    }
    const c = new Conn(sock, address, now);
    this.conns.add(c);
    this.perClient.set(address, (this.perClient.get(address) ?? 0) + 1);
    /** One query fewer owed; the last one owed to a client that is done (or to a drain) ends the connection. Whether it closed. */
    const settled = (): boolean => {
      c.pending--;
      c.active = Date.now();
      if (!(c.ended || this.draining) || c.pending > 0) return false;
      if (!sock.destroyed) sock.end();
      return true;
    };
    const client: Client = {
      transport: 'tcp',
      address,
      port: sock.remotePort ?? 0,
      dropped: () => void settled(),
      respond: (reply) => {
        if (sock.destroyed || !sock.writable) return void settled();
        sock.write(frame(reply));
        if (settled()) return;
        if (sock.writableLength > MAX_WRITE_QUEUE && c.blockedSince === 0) {
          // The client is not reading: stop taking its queries until the queue drains.
          c.blockedSince = c.active;
          sock.pause();
        }
      },
    };
    sock.on('drain', () => {
      if (c.blockedSince === 0) return;
      c.blockedSince = 0;
      if (c.partialSince > 0) c.partialSince = Date.now();
      sock.resume();
    });
    sock.on('data', (chunk) => {
      c.reader.push(chunk, (msg) => {
        c.active = Date.now();
        c.pending++;
        try {
          this.pipeline.handle(msg, client);
        } catch (err) {
          // The last resort: this query is dropped, the connection and the listener live on.
          this.pipeline.guard.fault('tcp', err, client.address);
          settled();
        }
      });
      if (!c.reader.partial) c.partialSince = 0;
      else if (c.partialSince === 0) c.partialSince = Date.now();
    });
    sock.on('end', () => {
      // The client is done sending; finish the replies it is owed, then close.
      c.ended = true;
      if (c.pending === 0) sock.end();
    });
    sock.on('error', () => sock.destroy());
    sock.on('close', () => {
      this.conns.delete(c);
      const n = (this.perClient.get(address) ?? 1) - 1;
      if (n > 0) this.perClient.set(address, n);
      else this.perClient.delete(address);
    });
  }

  /**
   * Closes one connection to make room: one holding a partial query first,
   * else the one idle longest; only connections with no query out, and only
   * `address`'s own when given. False when there is none to close.
   */
  private shed(now: number, address: string | null, reason: ShedReason): boolean {
    let victim: Conn | null = null;
    let score = -1;
    for (const c of this.conns) {
      if (!c.sheddable || (address !== null && c.address !== address)) continue;
      // A partial query ranks above any idle time.
      const s = (c.partialSince > 0 ? 1e12 : 0) + (now - c.active);
      if (s > score) {
        score = s;
        victim = c;
      }
    }
    if (victim === null) return false;
    this.drop(victim, reason);
    return true;
  }

  private drop(c: Conn, reason: ShedReason): void {
    this.stats.shed[reason]++;
    this.conns.delete(c);
    c.sock.destroy();
  }

  private sweep(now: number): void {
    for (const c of this.conns) {
      // While raced does not read (replies piled up), a partial query is raced's doing, not the client's.
      if (c.blockedSince > 0) {
        if (now - c.blockedSince >= STALLED_MS) this.drop(c, 'stalled');
      } else if (c.partialSince > 0 && now - c.partialSince >= PARTIAL_QUERY_MS) this.drop(c, 'partial');
      else if (c.pending === 0 && now - c.active >= this.opts.idleTimeoutMs) this.drop(c, 'idle');
    }
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

  /**
   * Drain: stops accepting; a connection that owes no reply is closed now,
   * the others right after their last reply (RFC 7766 §6.2.3: the server may
   * close; a client sends what it still has on a new connection elsewhere).
   */
  drain(): void {
    this.draining = true;
    this.server.close();
    for (const c of this.conns) if (c.pending === 0) c.sock.end();
  }

  /**
   * Ends every connection (replies already written still go out first) and
   * resolves once all are closed; any still open after `ms` are destroyed.
   */
  close(ms: number): Promise<void> {
    this.draining = true;
    this.server.close();
    clearInterval(this.sweeper);
    if (this.conns.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const socks = [...this.conns].map((c) => c.sock);
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
