// DNS over HTTPS upstreams (RFC 8484): HTTP/2 only, over the same verified
// TLS as DoT (ALPN h2; a server that will not speak h2 is a failed handshake,
// never a fallback), one long-lived connection per upstream carrying many
// queries as concurrent streams. POST with application/dns-message, message
// ID 0 (RFC 8484 §4.1: the stream is the match). The pool bookkeeping
// (counters, backoff, session resumption, handing queries back when a
// connection goes away) is the stream pool's.
import http2 from 'node:http2';
import type net from 'node:net';
import type tls from 'node:tls';
import { performance } from 'node:perf_hooks';
import type { Endpoint } from '../net/address.js';
import { ConnTimer } from './conn-timer.js';
import { ConnPool, StreamStats, connectTls, isVerifyError, type ConnErrorKind, type StreamPoolOptions, type StreamWaiter, type TlsSettings } from './stream-pool.js';

/** Why a DoH exchange failed though the connection was fine; the `raced_upstream_doh_http_errors_total` kinds. */
export const HTTP_ERROR_KINDS = ['status', 'content_type', 'body', 'reset'] as const;
export type HttpErrorKind = (typeof HTTP_ERROR_KINDS)[number];

export class DohStats extends StreamStats {
  /** HTTP/2 streams opened (one per query sent). */
  streams = 0;
  /** GOAWAY frames received. */
  goaways = 0;
  readonly httpErrors: Record<HttpErrorKind, number> = { status: 0, content_type: 0, body: 0, reset: 0 };
}

/** A query over DoH: a stream waiter that also hears HTTP failures and takes its reply whole. */
export interface DohWaiter extends StreamWaiter {
  /** The stream ended with a non-200 status, another content type, or a reset: the leg fails now. */
  onHttpError(kind: HttpErrorKind, detail: string): void;
}

export interface DohTarget {
  tls: TlsSettings;
  /** :authority (NAME[:PORT] or the address) and :path. */
  authority: string;
  path: string;
}

const MEDIA = 'application/dns-message';
/** The most a DNS message can be; a bigger body is not one. */
const MAX_BODY = 65535;
/** Until the server's SETTINGS say otherwise (RFC 9113 recommends at least 100). */
const DEFAULT_MAX_STREAMS = 100;
const { NGHTTP2_REFUSED_STREAM, NGHTTP2_CANCEL } = http2.constants;

/** One HTTP/2 connection to a DoH server. */
export class DohConn {
  readonly pending = new Map<number, StreamWaiter>();
  private readonly reqs = new Map<number, http2.ClientHttp2Stream>();
  ready = false;
  /** No new queries: GOAWAY came, or the connection is going away. */
  draining = false;
  private closed = false;
  private tcpUp = false;
  queries = 0;
  /** The server's SETTINGS_MAX_CONCURRENT_STREAMS. */
  maxStreams = DEFAULT_MAX_STREAMS;
  private nextId = 1;
  private readonly h2: http2.ClientHttp2Session;
  private readonly sock: tls.TLSSocket;
  /** setup: connect/handshake; read: replies due; ping: next keepalive PING; pong: its ack due; idle: close. */
  private readonly timer = new ConnTimer<'setup' | 'read' | 'idle' | 'ping' | 'pong'>('setup', () => this.onTimer());
  private lastRead = 0;
  private idleSince = 0;

  constructor(
    private readonly pool: DohPool,
    ep: Endpoint,
    private readonly opts: StreamPoolOptions,
    private readonly target: DohTarget,
    session: Buffer | undefined,
  ) {
    const { raw, sock } = connectTls(ep, target.tls, session, ['h2']);
    this.sock = sock;
    this.timer.arm(opts.connectTimeoutMs, 'setup');
    raw.once('connect', () => {
      this.tcpUp = true;
      if (!this.closed) this.timer.arm(opts.handshakeTimeoutMs, 'setup');
    });
    // Before http2's own listener: a server without h2 never gets an HTTP/1 request.
    sock.once('secureConnect', () => {
      if (sock.alpnProtocol !== 'h2') return this.fail('handshake', `the server does not speak HTTP/2 (ALPN ${sock.alpnProtocol || 'none'})`);
      pool.stats.handshakes++;
      if (sock.isSessionReused()) pool.stats.resumed++;
    });
    sock.on('session', (s: Buffer) => pool.saveSession(s));
    raw.on('error', (err: NodeJS.ErrnoException) => this.fail(this.classify(err), err.message));
    sock.on('error', (err: NodeJS.ErrnoException) => this.fail(this.classify(err), err.message));
    this.h2 = http2.connect(`https://${target.authority}`, {
      createConnection: () => sock as unknown as net.Socket,
      settings: { enablePush: false },
      // Streams beyond the server's limit wait in nghttp2's queue, on this connection (the pool opens another first when it may).
      peerMaxConcurrentStreams: DEFAULT_MAX_STREAMS,
    });
    this.h2.on('connect', () => this.up());
    this.h2.on('remoteSettings', (s: http2.Settings) => {
      if (s.maxConcurrentStreams !== undefined) this.maxStreams = Math.max(1, Math.min(s.maxConcurrentStreams, 10_000));
    });
    this.h2.on('goaway', () => {
      // Streams above the server's last stream ID are refused (re-sent by their legs); the rest finish here.
      pool.stats.goaways++;
      this.draining = true;
      if (this.pending.size === 0) this.close();
    });
    this.h2.on('error', (err: NodeJS.ErrnoException) => this.fail(this.classify(err), err.message));
    this.h2.on('close', () => this.fail('reset', 'closed'));
  }

  /** Sends a query as a new stream; its ID is set to 0 (RFC 8484 §4.1). Returns the waiter's key here. */
  send(waiter: DohWaiter, packet: Buffer): number {
    const id = this.nextId++;
    packet.writeUInt16BE(0, 0);
    this.pending.set(id, waiter);
    this.queries++;
    this.pool.stats.streams++;
    if (this.ready && this.timer.for !== 'read') {
      this.lastRead = performance.now();
      this.timer.arm(this.opts.readTimeoutMs, 'read');
    }
    let req: http2.ClientHttp2Stream;
    try {
      req = this.h2.request(
        { ':method': 'POST', ':path': this.target.path, 'content-type': MEDIA, accept: MEDIA, 'content-length': packet.length },
        { endStream: false },
      );
    } catch (err) {
      // The session is closing under us: the query goes back to its leg as from a lost connection.
      queueMicrotask(() => this.fail('reset', (err as Error).message));
      return id;
    }
    this.reqs.set(id, req);
    req.end(packet);
    let status = 0;
    let type = '';
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('response', (h) => {
      this.lastRead = performance.now();
      status = Number(h[':status']);
      type = String(h['content-type'] ?? '');
    });
    req.on('data', (c: Buffer) => {
      this.lastRead = performance.now();
      size += c.length;
      if (size <= MAX_BODY) chunks.push(c);
    });
    req.on('end', () => {
      // No response at all: the stream was cut, not answered; its 'close' says how.
      if (status === 0) return;
      const w = this.take(id);
      if (w === null) return;
      if (status !== 200) return this.httpError(w, 'status', `HTTP status ${status}`);
      // Media type parameters are allowed; the type itself must be this one.
      if (type.split(';', 1)[0]!.trim().toLowerCase() !== MEDIA) return this.httpError(w, 'content_type', `content type '${type}'`);
      if (size > MAX_BODY || size === 0) return this.httpError(w, 'body', `body of ${size} bytes`);
      w.onMessage(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size), this);
    });
    req.on('error', () => {});
    req.on('close', () => {
      // Refused (above a GOAWAY's last stream ID): never processed, always safe to send again.
      if (req.rstCode === NGHTTP2_REFUSED_STREAM) {
        const w = this.take(id);
        return void (w && this.pool.lostOne(w));
      }
      // Cut because the connection is going away: its end hands its queries back.
      if (this.closed || this.h2.destroyed || this.sock.destroyed) return;
      const w = this.take(id);
      if (w === null) return;
      // Cut while the connection drains after a GOAWAY: the server did not answer it.
      if (this.draining || this.h2.closed) return this.pool.lostOne(w);
      this.httpError(w, 'reset', `stream reset by the server (code ${req.rstCode})`);
    });
    return id;
  }

  /** The waiter no longer wants its reply: its stream is cancelled. */
  release(id: number, waiter: StreamWaiter): void {
    if (this.pending.get(id) !== waiter) return;
    this.pending.delete(id);
    const req = this.reqs.get(id);
    this.reqs.delete(id);
    if (req && !req.closed) req.close(NGHTTP2_CANCEL);
    if (this.pending.size === 0) this.quiet();
  }

  /** EDNS keepalive means nothing over HTTP/2: the connection's life is HTTP's business. */
  serverKeepalive(): void {}

  close(): void {
    this.draining = true;
    if (this.closed) return;
    this.closed = true;
    this.timer.clear();
    this.h2.close();
    this.sock.end();
    setTimeout(() => this.h2.destroy(), 1000).unref();
    this.pool.gone(this, 'closed', null, this.ready);
  }

  private take(id: number): DohWaiter | null {
    const w = this.pending.get(id);
    if (w === undefined) return null;
    this.pending.delete(id);
    this.reqs.delete(id);
    if (this.pending.size === 0) this.quiet();
    return w as DohWaiter;
  }

  private httpError(w: DohWaiter, kind: HttpErrorKind, detail: string): void {
    this.pool.stats.httpErrors[kind]++;
    w.onHttpError(kind, detail);
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

  /** Nothing outstanding: close if draining, else keep the connection alive with PINGs until the idle timeout. */
  private quiet(): void {
    if (this.closed || !this.ready) return;
    if (this.draining) return this.close();
    this.idleSince = performance.now();
    this.timer.arm(this.pingEvery(), 'ping');
  }

  private idleLeft(): number {
    return this.idleSince + this.opts.idleTimeoutMs - performance.now();
  }

  /** A PING at a third of the idle timeout (at most every 30 s) finds a dead connection before a query does. */
  private pingEvery(): number {
    return Math.min(30_000, Math.max(100, this.opts.idleTimeoutMs / 3));
  }

  private onTimer(): void {
    if (this.closed) return;
    if (this.timer.for === 'idle') return this.close();
    if (this.timer.for === 'setup') return this.fail(this.tcpUp ? 'handshake' : 'connect', 'timed out');
    if (this.timer.for === 'pong') return this.fail('read_timeout', `PING not answered in ${this.opts.readTimeoutMs} ms`);
    if (this.timer.for === 'ping') {
      // No PING whose answer could not come before the idle close.
      const left = this.idleLeft();
      if (left <= this.opts.readTimeoutMs) return this.timer.arm(Math.max(1, left), 'idle');
      const sent = this.h2.ping(() => {
        // Acked (or the session is gone): the next PING, unless a query took over the timer meanwhile.
        if (!this.closed && this.timer.for === 'pong') this.timer.arm(Math.max(1, Math.min(this.pingEvery(), this.idleLeft())), 'ping');
      });
      if (!sent) return this.close();
      return this.timer.arm(this.opts.readTimeoutMs, 'pong');
    }
    if (this.pending.size === 0) return this.quiet();
    // Read deadline from the last response byte: a busy connection is never cut.
    const left = this.lastRead + this.opts.readTimeoutMs - performance.now();
    if (left > 1) return this.timer.arm(left, 'read');
    this.fail('read_timeout', `no reply for ${this.opts.readTimeoutMs} ms`);
  }

  private classify(err: NodeJS.ErrnoException): ConnErrorKind {
    if (isVerifyError(err)) return 'verify';
    if (this.ready) return 'reset';
    return this.tcpUp ? 'handshake' : 'connect';
  }

  private fail(kind: ConnErrorKind, message: string): void {
    if (this.closed) return;
    this.closed = true;
    this.draining = true;
    this.timer.clear();
    this.reqs.clear();
    this.h2.destroy();
    this.sock.destroy();
    this.pool.gone(this, kind, message, this.ready);
  }
}

export class DohPool extends ConnPool<DohConn, DohStats> {
  /** Where to connect: an address, or null while a name is not resolved yet. */
  endpoint: Endpoint | null;
  /** A bootstrapped name's addresses; a connection that fails to come up moves to the next. */
  private addresses: Endpoint[] = [];
  private next = 0;

  constructor(
    endpoint: Endpoint | null,
    readonly opts: StreamPoolOptions,
    private readonly target: DohTarget,
    onConnError: (kind: ConnErrorKind, message: string, established: boolean) => void,
    onStrayReply: () => void,
  ) {
    super(onConnError, onStrayReply, new DohStats());
    this.endpoint = endpoint;
  }

  /**
   * As the stream pool's send: the least busy connection below the server's
   * stream limit; a new one when all are at it and the pool has room (or
   * none exists); null in the backoff or while there is no address.
   */
  send(waiter: DohWaiter, packet: Buffer, force = false): { conn: DohConn; id: number } | null {
    // The least busy ready connection below the server's stream limit; else one being set up; else a new one.
    let best: DohConn | null = null;
    let connecting: DohConn | null = null;
    let least: DohConn | null = null;
    let live = 0;
    for (const c of this.conns) {
      if (c.draining) continue;
      live++;
      if (!c.ready) {
        if (connecting === null || c.pending.size < connecting.pending.size) connecting = c;
        continue;
      }
      if (least === null || c.pending.size < least.pending.size) least = c;
      if (c.pending.size < c.maxStreams && (best === null || c.pending.size < best.pending.size)) best = c;
    }
    if (best === null && connecting === null && this.endpoint !== null && live < this.opts.size && this.mayConnect(force, false)) {
      // A draining connection (GOAWAY) takes no new stream, so it leaves its place in the pool.
      connecting = new DohConn(this, this.endpoint, this.opts, this.target, this.session);
      this.conns.push(connecting);
      this.stats.opened++;
    }
    // All at their limit and no room for another: nghttp2 queues the stream until one ends.
    best ??= connecting ?? least;
    if (best === null) return null;
    return { conn: best, id: best.send(waiter, packet) };
  }

  /** The addresses a bootstrapped name resolved to (the last good ones); new connections use them, open ones stay. */
  setAddresses(eps: Endpoint[]): void {
    this.addresses = eps;
    this.next = 0;
    this.endpoint = eps[0] ?? null;
  }

  override gone(c: DohConn, kind: ConnErrorKind | 'closed', message: string | null, established: boolean): void {
    if (!established && kind !== 'closed' && this.addresses.length > 1) {
      this.next = (this.next + 1) % this.addresses.length;
      this.endpoint = this.addresses[this.next]!;
    }
    super.gone(c, kind, message, established);
  }

  /** A stream the server did not process: its query goes back to its leg, to be sent again. */
  lostOne(w: StreamWaiter): void {
    this.stats.resent++;
    w.onLost(true, true);
  }

  /** Connections now open or being opened. */
  get open(): number {
    return this.conns.length;
  }
}
