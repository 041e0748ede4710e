// Outgoing UDP sockets for upstream legs. RFC 5452 §9.2 asks for an
// unpredictable source port and ID per query. A socket per query costs a
// bind and a close per leg (dnsmasq does that), so raced keeps, per upstream,
// a socket on a kernel-chosen ephemeral port, gives each leg a fresh random
// ID on it, and retires the socket after 64 legs or a second, whichever comes
// first: the port in use keeps moving, under load far faster than it can be
// found by probing (the SADDNS side channel needs seconds per port), no
// socket older than a second takes a new leg, and at most 64 IDs are ever
// valid on one port at once, so a spoofer who learns a port still faces ten
// of the ID's 16 bits or more (with 1,024 legs per port it was six).
// Measured (bench/source-ports.ts, README "Security"): a port per leg costs
// about three times the pool's CPU per leg (a socket's life is ~35 µs in
// Node); 64 legs per port costs within the noise of 1,024.
// The sockets are connect()ed to their upstream: the kernel then drops
// datagrams from any other address or port before raced sees them, and a
// send skips the per-packet address lookup and route resolution.
import dgram from 'node:dgram';
import { randomFillSync } from 'node:crypto';
import type { Endpoint } from '../net/address.js';
import { literalLookup } from '../net/lookup.js';
import { u16, put16 } from '../wire/bytes.js';

/** How a pool rotates its sockets; the defaults are raced's (see the measurement in README "Security"). */
export interface RotationOptions {
  /** Legs a socket takes before it is retired. */
  usesPerSocket: number;
  /** A socket takes no new leg after this many ms. */
  maxAgeMs: number;
}

export const DEFAULT_ROTATION: RotationOptions = { usesPerSocket: 64, maxAgeMs: 1000 };

/** A leg waiting for its reply on a pooled socket. */
export interface PendingUdp {
  readonly endpoint: Endpoint;
  /** A datagram with this leg's ID from the exact address and port asked. */
  onDatagram(msg: Buffer): void;
  /** A datagram with this leg's ID from somewhere else: a spoof or a stray. */
  onForeign(): void;
  onSocketError(): void;
}

let random = Buffer.alloc(0);
let randomAt = 0;

/** Cryptographically random 16-bit numbers, drawn from a refilled block. */
export function random16(): number {
  if (randomAt + 2 > random.length) {
    random = randomFillSync(Buffer.allocUnsafe(4096));
    randomAt = 0;
  }
  const v = u16(random, randomAt);
  randomAt += 2;
  return v;
}

/** The socket a leg waits on; the leg hands it back with release(). */
export interface UdpSlot {
  release(id: number, leg: PendingUdp): void;
}

class PooledSocket implements UdpSlot {
  readonly socket: dgram.Socket;
  readonly pending = new Map<number, PendingUdp>();
  uses = 0;
  retired = false;
  closed = false;

  constructor(
    ep: Endpoint,
    /** performance.now() after which no new leg is put on this socket. */
    readonly retireAt: number,
    private readonly onStray: () => void,
    private readonly onBroken: (s: PooledSocket) => void,
  ) {
    this.socket = dgram.createSocket({ type: ep.family === 4 ? 'udp4' : 'udp6', recvBufferSize: 1 << 22, lookup: literalLookup });
    this.socket.on('message', (msg, rinfo) => this.receive(msg, rinfo));
    // On a connected socket an ICMP port-unreachable arrives as ECONNREFUSED:
    // the upstream is not listening. Fail the legs waiting here at once
    // (a network error, not a timeout) and replace the socket.
    this.socket.on('error', () => this.failAll());
    // With a synchronous lookup, bind and connect complete before this returns.
    this.socket.bind({ port: 0, exclusive: true });
    this.socket.connect(ep.port, ep.host);
  }

  private receive(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    if (msg.length < 2) return this.onStray();
    const leg = this.pending.get(u16(msg, 0));
    if (leg === undefined) return this.onStray();
    const ep = leg.endpoint;
    if (rinfo.port !== ep.port || !sameHost(rinfo.address, ep.host)) return leg.onForeign();
    leg.onDatagram(msg);
  }

  private failAll(): void {
    this.retired = true;
    this.onBroken(this);
    const legs = [...this.pending.values()];
    this.pending.clear();
    this.close();
    for (const leg of legs) leg.onSocketError();
  }

  release(id: number, leg: PendingUdp): void {
    if (this.pending.get(id) === leg) this.pending.delete(id);
    if (this.retired && this.pending.size === 0) this.close();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.close();
  }
}

function sameHost(a: string, b: string): boolean {
  if (a === b) return true;
  // Replies on a v6 socket to a v4-mapped address, and IPv6 spelling variants.
  if (a.startsWith('::ffff:')) a = a.slice(7);
  if (b.startsWith('::ffff:')) b = b.slice(7);
  return a.toLowerCase() === b.toLowerCase();
}

export class UdpPool {
  /** Each upstream's socket for new legs (retired ones live on until their last leg ends). */
  private readonly current = new Map<string, PooledSocket>();
  /** Datagrams that matched no pending leg (late replies of released legs, spoofs). */
  stray = 0;
  /** Sockets opened so far (one source port each). */
  opened = 0;

  constructor(private readonly rotation: RotationOptions = DEFAULT_ROTATION) {}

  /**
   * Registers the leg under a fresh random ID on the upstream's current socket, writes the
   * ID into `packet` and sends it. The caller must call
   * `slot.release(packet's ID, leg)` when the leg ends. `now`: performance.now().
   */
  send(leg: PendingUdp, packet: Buffer, now: number): UdpSlot {
    const sock = this.pick(leg.endpoint, now);
    let id = random16();
    while (sock.pending.has(id)) id = random16();
    put16(packet, 0, id);
    sock.pending.set(id, leg);
    if (++sock.uses >= this.rotation.usesPerSocket || now >= sock.retireAt) this.retire(sock, leg.endpoint);
    // No send callback: it costs an allocation per packet; a failed send
    // surfaces as the socket's 'error' event, which fails its legs.
    try {
      sock.socket.send(packet);
    } catch {
      // The socket died under us: fail this leg on the next tick, never in the caller's frame.
      sock.pending.delete(id);
      queueMicrotask(() => leg.onSocketError());
      this.drop(sock, leg.endpoint);
    }
    return sock;
  }

  private pick(ep: Endpoint, now: number): PooledSocket {
    const cur = this.current.get(ep.label);
    if (cur !== undefined) return cur;
    this.opened++;
    const s = new PooledSocket(
      ep,
      now + this.rotation.maxAgeMs,
      () => this.stray++,
      (broken) => this.drop(broken, ep),
    );
    this.current.set(ep.label, s);
    return s;
  }

  /** Takes a broken or retired socket out of use so no new leg gets it. */
  private drop(sock: PooledSocket, ep: Endpoint): void {
    if (this.current.get(ep.label) === sock) this.current.delete(ep.label);
  }

  private retire(sock: PooledSocket, ep: Endpoint): void {
    sock.retired = true;
    this.drop(sock, ep);
    if (sock.pending.size === 0) sock.close();
  }

  /** Closes idle sockets now and the others as their last leg ends. */
  close(): void {
    for (const s of this.current.values()) {
      s.retired = true;
      if (s.pending.size === 0) s.close();
    }
    this.current.clear();
  }
}
