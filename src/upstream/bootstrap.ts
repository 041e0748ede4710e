// Bootstrap resolution of upstream names (https://HOST with HOST a name):
// A and AAAA asked of plain DNS resolvers (--bootstrap, else raced's plain
// upstreams), never of raced itself. Asked again before the answer's TTL
// runs out (with a floor); on failure the last good addresses are kept and
// the name is asked again with backoff. Rare, off the query path: a socket
// per question is fine here.
import dgram from 'node:dgram';
import { performance } from 'node:perf_hooks';
import { isIP } from 'node:net';
import { endpointLabel, type Endpoint } from '../net/address.js';
import { matchReply } from '../wire/match.js';
import { skipName } from '../wire/message.js';
import { buildQuery, textToWire } from '../wire/build.js';
import { FLAG_RD, Rcode, Type, CLASS_IN } from '../wire/constants.js';
import { u16, u32 } from '../wire/bytes.js';
import { random16 } from './udp-pool.js';

/** Re-resolution at 90% of the TTL, never sooner than this after an answer, never later than the cap. */
export const MIN_REFRESH_MS = 30_000;
const MAX_REFRESH_MS = 3_600_000;
/** After a failure: first retry, doubling up to the cap. */
const FIRST_RETRY_MS = 1000;
const MAX_RETRY_MS = 60_000;
const TRY_TIMEOUT_MS = 1500;

/** A and AAAA records of one question's answer, and the smallest TTL among them. */
export interface Addresses {
  hosts: string[];
  ttl: number;
}

function query(name: string, type: number): Buffer {
  return buildQuery(textToWire(name), type, random16(), FLAG_RD);
}

/** The addresses of `type` in a valid reply to `sent`; an Error saying why not. */
export function readAddresses(reply: Buffer, sent: Buffer, type: number): Addresses | Error {
  const scan = matchReply(reply, sent, sent.length, false);
  if (typeof scan === 'string') return new Error(`bad reply (${scan})`);
  if (scan.rcode === Rcode.NXDOMAIN) return { hosts: [], ttl: -1 };
  if (scan.rcode !== Rcode.NOERROR) return new Error(`rcode ${scan.rcode}`);
  const hosts: string[] = [];
  let ttl = Infinity;
  let off = scan.qEnd;
  for (let i = 0; i < scan.ancount; i++) {
    off = skipName(reply, off, true);
    if (off < 0 || off + 10 > reply.length) return new Error('bad reply (malformed)');
    const t = u16(reply, off);
    const len = u16(reply, off + 8);
    const rd = off + 10;
    if (t === type && u16(reply, off + 2) === CLASS_IN && len === (type === Type.A ? 4 : 16)) {
      hosts.push(type === Type.A ? reply.subarray(rd, rd + 4).join('.') : v6Text(reply, rd));
      ttl = Math.min(ttl, u32(reply, off + 4));
    }
    off = rd + len;
  }
  return { hosts, ttl: hosts.length ? ttl : -1 };
}

function v6Text(b: Buffer, at: number): string {
  const parts: string[] = [];
  for (let i = 0; i < 16; i += 2) parts.push(u16(b, at + i).toString(16));
  // Node normalises the zero runs when it connects; this form is valid as it is.
  return parts.join(':');
}

function ask(server: Endpoint, q: Buffer, type: number): Promise<Addresses> {
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket(server.family === 6 ? 'udp6' : 'udp4');
    const done = (err: Error | null, a?: Addresses): void => {
      clearTimeout(timer);
      sock.close();
      if (err) reject(err);
      else resolve(a!);
    };
    const timer = setTimeout(() => done(new Error(`no reply from ${server.label}`)), TRY_TIMEOUT_MS);
    sock.on('error', (err) => done(err));
    sock.on('message', (msg, rinfo) => {
      if (rinfo.port !== server.port) return;
      const a = readAddresses(msg, q, type);
      if (a instanceof Error) {
        // A spoof-like reply is ignored (the real one may still come); a real error ends this try.
        if (!/^bad reply \((id|question)\)/.test(a.message)) done(new Error(`${server.label}: ${a.message}`));
        return;
      }
      done(null, a);
    });
    sock.send(q, server.port, server.host);
  });
}

/** A and AAAA of `name` from the first of `servers` that answers both. */
export async function resolveName(name: string, servers: readonly Endpoint[]): Promise<Addresses> {
  if (servers.length === 0) throw new Error('no bootstrap resolver (give --bootstrap, or a plain upstream)');
  let last: Error = new Error('no answer');
  for (const server of servers) {
    try {
      const [a, aaaa] = await Promise.all([ask(server, query(name, Type.A), Type.A), ask(server, query(name, Type.AAAA), Type.AAAA)]);
      const hosts = [...a.hosts, ...aaaa.hosts];
      if (hosts.length === 0) throw new Error(`${server.label}: no A or AAAA record for ${name}`);
      const ttls = [a.ttl, aaaa.ttl].filter((t) => t >= 0);
      return { hosts, ttl: Math.min(...ttls) };
    } catch (err) {
      last = err as Error;
    }
  }
  throw last;
}

export interface NameWatchEvents {
  /** New addresses (as endpoints on the upstream's port); not called when they did not change. */
  resolved(eps: Endpoint[], ttl: number): void;
  /** A resolution failed; `kept`: last good addresses still in use. */
  failed(message: string, kept: number): void;
}

/** Keeps one name resolved: at start, before its TTL runs out, again with backoff after a failure. */
export class NameWatch {
  /** The addresses in use (the last good answer); empty until the first. */
  addresses: Endpoint[] = [];
  failures = 0;
  resolutions = 0;
  /** performance.now() of the last good answer. */
  resolvedAt = -Infinity;
  private timer: NodeJS.Timeout | null = null;
  private retry = FIRST_RETRY_MS;
  private stopped = false;

  constructor(
    readonly name: string,
    private readonly port: number,
    private readonly servers: () => readonly Endpoint[],
    private readonly events: NameWatchEvents,
    /** The re-resolution floor (tests shorten it). */
    private readonly minRefreshMs = MIN_REFRESH_MS,
  ) {
    // After the caller's synchronous set-up: the default resolvers are raced's upstreams, known once it is done.
    queueMicrotask(() => void this.run());
  }

  private async run(): Promise<void> {
    if (this.stopped) return;
    try {
      const { hosts, ttl } = await resolveName(this.name, this.servers());
      if (this.stopped) return;
      this.resolutions++;
      this.retry = FIRST_RETRY_MS;
      this.resolvedAt = performance.now();
      const eps = hosts.map((h) => ({ host: h, port: this.port, family: (isIP(h) === 6 ? 6 : 4) as 4 | 6, label: endpointLabel(h, this.port) }));
      const changed = eps.map((e) => e.label).join() !== this.addresses.map((e) => e.label).join();
      this.addresses = eps;
      if (changed) this.events.resolved(eps, ttl);
      this.schedule(Math.min(MAX_REFRESH_MS, Math.max(this.minRefreshMs, ttl * 900)));
    } catch (err) {
      if (this.stopped) return;
      this.failures++;
      this.events.failed((err as Error).message, this.addresses.length);
      this.schedule(this.retry);
      this.retry = Math.min(this.retry * 2, MAX_RETRY_MS);
    }
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.run(), ms);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }
}
