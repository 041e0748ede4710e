// Persistent, pipelined stream connections to one upstream (tcp:// and
// tls://), dotproxy's discipline: a few long-lived connections per upstream,
// each carrying many queries at once (RFC 7766 §6.2.1, RFC 7858 §3.3), replies
// matched by ID in any order. A steady load pays a handshake per connection,
// not per query. A connection the server closes takes no query with it: the
// queries still on it are handed back to their legs to be sent again.
import net from 'node:net';
import tls from 'node:tls';
import { performance } from 'node:perf_hooks';
import type { Endpoint } from '../net/address.js';
import { FrameReader, frame } from '../net/framing.js';
import { random16 } from './udp-pool.js';
import { bucketIndex } from './stats.js';
import { ConnTimer } from './conn-timer.js';

/** What a query holds of the pooled connection (stream or HTTP/2) it waits on. */
export interface QueryConn {
  /** The waiter no longer wants its reply. */
  release(id: number, waiter: StreamWaiter): void;
  /** RFC 7828: the server's idle timeout in 100 ms units from a reply. */
  serverKeepalive(units: number): void;
}

/** A query waiting for its reply on a pooled connection. */
export interface StreamWaiter {
  /** A message on the connection carrying this waiter's ID; checking it is the waiter's business. */
  onMessage(msg: Buffer, conn: QueryConn): void;
  /**
   * The connection closed before the reply came. `established`: it had
   * worked (the server closed it, or it broke): send again. Otherwise it
   * never came up (refused, handshake or certificate failure): give up.
   * `refused`: the server said it did not process this query (an HTTP/2
   * stream above a GOAWAY's last stream ID): always safe to send again.
   */
  onLost(established: boolean, refused?: boolean): void;
}

export interface TlsSettings {
  /** The name the certificate must carry (and SNI); null: verify the IP address itself. */
  servername: string | null;
  /** The trusted CAs, parsed once: building a context from the system store costs tens of ms of CPU. */
  context: tls.SecureContext;
}

export interface StreamPoolOptions {
  /** Connections at most. */
  size: number;
  /** null: plain TCP. */
  tls: TlsSettings | null;
  connectTimeoutMs: number;
  handshakeTimeoutMs: number;
  /** A connection with queries outstanding that receives nothing for this long is dropped. */
  readTimeoutMs: number;
  /** An unused connection is closed after this long (the server's keepalive may shorten it). */
  idleTimeoutMs: number;
}

/** Why a connection failed or was dropped; the `raced_upstream_conn_errors_total` kinds. */
export const CONN_ERROR_KINDS = ['connect', 'handshake', 'verify', 'read_timeout', 'reset'] as const;
export type ConnErrorKind = (typeof CONN_ERROR_KINDS)[number];

/** Upper bounds of the queries-per-connection histogram. */
export const QUERIES_PER_CONN_BUCKETS = [1, 10, 100, 1000, 10000, 100000];

export class StreamStats {
  opened = 0;
  closed = 0;
  handshakes = 0;
  resumed = 0;
  /** Queries sent again after the connection they were on went away. */
  resent = 0;
  readonly errors: Record<ConnErrorKind, number> = { connect: 0, handshake: 0, verify: 0, read_timeout: 0, reset: 0 };
  /** Non-cumulative counts of closed connections by queries carried; last slot +Inf. */
  readonly perConn = new Float64Array(QUERIES_PER_CONN_BUCKETS.length + 1);
  perConnSum = 0;
}

// Errors OpenSSL and Node raise when the certificate does not verify (as
// opposed to the handshake failing for other reasons).
const VERIFY_CODES = new Set<string>([
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_SIGNATURE_FAILURE',
  'CERT_CHAIN_TOO_LONG',
  'INVALID_CA',
  'HOSTNAME_MISMATCH',
]);

/** The certificate did not verify (as opposed to the handshake failing otherwise). */
export function isVerifyError(err: NodeJS.ErrnoException): boolean {
  return err.code !== undefined && VERIFY_CODES.has(err.code);
}

/**
 * A TCP connection to `ep` with TLS over it, verified against `t`. `alpn`:
 * the protocols offered (DoH asks for h2). The raw socket is returned too:
 * its 'connect' separates the connect timeout from the handshake's.
 */
export function connectTls(ep: Endpoint, t: TlsSettings, session: Buffer | undefined, alpn?: string[]): { raw: net.Socket; sock: tls.TLSSocket } {
  const raw = net.connect({ host: ep.host, port: ep.port, noDelay: true });
  const sock = tls.connect({
    socket: raw,
    // A hostname check against the name given, or against the IP address when none was.
    host: t.servername ?? ep.host,
    ...(t.servername !== null ? { servername: t.servername } : {}),
    secureContext: t.context,
    session,
    ...(alpn ? { ALPNProtocols: alpn } : {}),
  });
  return { raw, sock };
}

const FIRST_BACKOFF_MS = 250;
const MAX_BACKOFF_MS = 30_000;

export class StreamConn {
  private readonly sock: net.Socket;
  private readonly reader = new FrameReader();
  readonly pending = new Map<number, StreamWaiter>();
  /** Handshake done (TCP: connected). */
  ready = false;
  /** No new queries: the server asked to close, or the connection is going away. */
  draining = false;
  private closed = false;
  /** The TCP connection is up (TLS: the handshake may still be running). */
  private tcpUp = false;
  queries = 0;
  /** What the timer is for; a read deadline while queries are out, else idle. */
  private readonly timer = new ConnTimer<'setup' | 'read' | 'idle'>('setup', () => this.onTimer());
  private lastRead = 0;
  private idleMs: number;

  constructor(
    private readonly pool: StreamPool,
    ep: Endpoint,
    private readonly opts: StreamPoolOptions,
    session: Buffer | undefined,
  ) {
    this.idleMs = opts.idleTimeoutMs;
    const { raw, sock } = opts.tls === null ? { raw: net.connect({ host: ep.host, port: ep.port, noDelay: true }), sock: null } : connectTls(ep, opts.tls, session);
    this.timer.arm(opts.connectTimeoutMs, 'setup');
    raw.once('connect', () => {
      this.tcpUp = true;
      if (opts.tls !== null && !this.closed) this.timer.arm(opts.handshakeTimeoutMs, 'setup');
    });
    if (sock === null) {
      this.sock = raw;
      raw.once('connect', () => this.up());
    } else {
      sock.once('secureConnect', () => {
        pool.stats.handshakes++;
        if (sock.isSessionReused()) pool.stats.resumed++;
        this.up();
      });
      sock.on('session', (s: Buffer) => pool.saveSession(s));
      raw.on('error', (err: NodeJS.ErrnoException) => this.fail(this.classify(err), err.message));
      this.sock = sock;
    }
    this.sock.on('data', (chunk: Buffer) => this.read(chunk));
    this.sock.on('error', (err: NodeJS.ErrnoException) => this.fail(this.classify(err), err.message));
    this.sock.on('end', () => this.fail('reset', 'closed by the server'));
    this.sock.on('close', () => this.fail('reset', 'closed'));
  }

  /** Writes a query on this connection under a fresh ID not in use on it. */
  send(waiter: StreamWaiter, packet: Buffer): number {
    let id = random16();
    while (this.pending.has(id)) id = random16();
    packet.writeUInt16BE(id, 0);
    this.pending.set(id, waiter);
    this.queries++;
    if (this.ready && this.timer.for !== 'read') {
      this.lastRead = performance.now();
      this.timer.arm(this.opts.readTimeoutMs, 'read');
    }
    this.sock.write(frame(packet));
    return id;
  }

  /** The waiter no longer wants its reply (race over); a reply that still comes is dropped. */
  release(id: number, waiter: StreamWaiter): void {
    if (this.pending.get(id) !== waiter) return;
    this.pending.delete(id);
    if (this.pending.size === 0) this.quiet();
  }

  /** RFC 7828: the server's idle timeout in 100 ms units; 0 asks to close. */
  serverKeepalive(units: number): void {
    if (units === 0) {
      this.draining = true;
      if (this.pending.size === 0) this.close();
      return;
    }
    this.idleMs = Math.min(this.opts.idleTimeoutMs, units * 100);
  }

  close(): void {
    this.draining = true;
    if (this.closed) return;
    this.closed = true;
    this.timer.clear();
    // FIN (after TLS close_notify) once written, then the descriptor goes: no waiting on a server that never closes its side.
    this.sock.destroySoon();
    this.pool.gone(this, 'closed', null, this.ready);
  }

  private up(): void {
    if (this.closed) return;
    this.ready = true;
    this.pool.connected();
    if (this.pending.size > 0) {
      this.lastRead = performance.now();
      this.timer.arm(this.opts.readTimeoutMs, 'read');
    } else {
      this.quiet();
    }
  }

  private read(chunk: Buffer): void {
    this.lastRead = performance.now();
    this.reader.push(chunk, (msg) => {
      if (msg.length < 2) return;
      const w = this.pending.get(msg.readUInt16BE(0));
      if (w === undefined) return this.pool.onStray();
      w.onMessage(msg, this);
    });
  }

  /** Nothing outstanding: start the idle clock, or close if the server asked to. */
  private quiet(): void {
    if (this.closed || !this.ready) return;
    if (this.draining) return this.close();
    this.timer.arm(this.idleMs, 'idle');
  }

  private onTimer(): void {
    if (this.timer.for === 'idle') return this.close();
    if (this.timer.for === 'setup') {
      return this.fail(this.tcpUp ? 'handshake' : 'connect', 'timed out');
    }
    if (this.pending.size === 0) return this.quiet();
    // Read deadline: measured from the last byte, so a busy connection is never cut.
    const left = this.lastRead + this.opts.readTimeoutMs - performance.now();
    if (left > 1) return this.timer.arm(left, 'read');
    this.fail('read_timeout', `no reply for ${this.opts.readTimeoutMs} ms`);
  }

  private classify(err: NodeJS.ErrnoException): ConnErrorKind {
    if (isVerifyError(err)) return 'verify';
    if (this.ready) return 'reset';
    return this.tcpUp && this.opts.tls !== null ? 'handshake' : 'connect';
  }

  private fail(kind: ConnErrorKind, message: string): void {
    if (this.closed) return;
    this.closed = true;
    this.draining = true;
    this.timer.clear();
    this.sock.destroy();
    this.pool.gone(this, kind, message, this.ready);
  }
}

/** What a pool needs of each of its connections. */
export interface PoolConn {
  readonly pending: Map<number, StreamWaiter>;
  readonly queries: number;
  close(): void;
}

/**
 * What every pooled transport shares: the counters, the TLS session kept for
 * resumption, and availability (after a failed connection none is tried again
 * before a backoff, unless forced by a probe or a query to a down upstream).
 */
export abstract class ConnPool<C extends PoolConn, S extends StreamStats = StreamStats> {
  protected conns: C[] = [];
  protected session: Buffer | undefined;
  private retryAt = 0;
  private backoff = FIRST_BACKOFF_MS;
  protected closedForGood = false;

  constructor(
    /** A connection failed to come up or broke: kind and reason, for the log and health. */
    private readonly onConnError: (kind: ConnErrorKind, message: string, established: boolean) => void,
    private readonly onStrayReply: () => void,
    readonly stats: S,
  ) {}

  /** A new connection may be opened now: not in the backoff, or forced while none is being set up. */
  protected mayConnect(force: boolean, connecting: boolean): boolean {
    return !this.closedForGood && (performance.now() >= this.retryAt || (force && !connecting));
  }

  saveSession(s: Buffer): void {
    this.session = s;
  }

  connected(): void {
    this.backoff = FIRST_BACKOFF_MS;
    this.retryAt = 0;
  }

  onStray(): void {
    this.onStrayReply();
  }

  /** A connection ended: count it, and give its queries back to their legs. */
  gone(c: C, kind: ConnErrorKind | 'closed', message: string | null, established: boolean): void {
    const i = this.conns.indexOf(c);
    if (i < 0) return;
    this.conns.splice(i, 1);
    const s = this.stats;
    s.closed++;
    s.perConn[bucketIndex(QUERIES_PER_CONN_BUCKETS, c.queries)]!++;
    s.perConnSum += c.queries;
    if (kind !== 'closed') {
      // A server closing a connection it served is routine; a reset with queries on it or a failure to connect is not:
      // those are counted and logged.
      const counted = kind !== 'reset' || c.pending.size > 0 || !established;
      if (counted) s.errors[kind]++;
      if (!established) {
        this.retryAt = performance.now() + this.backoff;
        this.backoff = Math.min(this.backoff * 2, MAX_BACKOFF_MS);
      }
      if (counted) this.onConnError(kind, (message ?? kind).trim(), established);
    }
    const waiters = [...c.pending.values()];
    c.pending.clear();
    if (established) s.resent += waiters.length;
    for (const w of waiters) w.onLost(established);
  }

  close(): void {
    this.closedForGood = true;
    for (const c of [...this.conns]) c.close();
  }
}

export class StreamPool extends ConnPool<StreamConn> {
  constructor(
    private readonly ep: Endpoint,
    readonly opts: StreamPoolOptions,
    onConnError: (kind: ConnErrorKind, message: string, established: boolean) => void,
    onStrayReply: () => void,
  ) {
    super(onConnError, onStrayReply, new StreamStats());
  }

  /**
   * Sends `packet` (its ID is overwritten) on the least busy usable
   * connection, opening one when there is none or all are busy and the pool
   * has room. Returns the connection and the ID, or null while the upstream
   * is in its backoff after a failed connection. `force` (a health probe, or
   * a query to an upstream that is down, asked because nothing better is
   * left): connect even in the backoff, one attempt at a time, so the first
   * query after the server is back gets through and a dead server costs one
   * connection attempt at a time, not one per query.
   */
  send(waiter: StreamWaiter, packet: Buffer, force = false): { conn: StreamConn; id: number } | null {
    let best: StreamConn | null = null;
    let connecting = false;
    for (const c of this.conns) {
      if (c.draining) continue;
      if (!c.ready) connecting = true;
      if (best === null || (c.ready && !best.ready) || (c.ready === best.ready && c.pending.size < best.pending.size)) best = c;
    }
    const mayConnect = this.mayConnect(force, connecting);
    if ((best === null || best.pending.size > 0) && this.conns.length < this.opts.size && mayConnect) {
      const c = new StreamConn(this, this.ep, this.opts, this.session);
      this.conns.push(c);
      this.stats.opened++;
      // A busy ready connection still takes this query: the new one serves the
      // ones after it, so no query waits on a handshake it does not need.
      if (best === null || !best.ready) best = c;
    }
    if (best === null) return null;
    return { conn: best, id: best.send(waiter, packet) };
  }
}
