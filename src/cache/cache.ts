// The answer cache: whole upstream replies kept as bytes with the offsets of
// their TTL fields, so a hit is a copy and a few patches, never a decode.
// Store: mnemonist's LRUMapWithDelete (typed-array LRU list, no garbage per
// operation), bounded both by entries and by the bytes of the replies it holds.
// Every time here is on the monotonic clock (performance.now(), ms): a step of
// the wall clock neither keeps an answer past its TTL nor expires it early.
import { LRUMapWithDelete } from 'mnemonist';
import { Rcode } from '../wire/constants.js';
import { POSITIVE, negativeKind } from '../wire/match.js';
import { u16 } from '../wire/bytes.js';
import type { Scan } from '../wire/message.js';
import type { ReplyLayout } from '../wire/build.js';

/**
 * A negative answer for caching (RFC 2308): NXDOMAIN, an empty answer, or a
 * CNAME chain that ends in no record of the asked type (§5: the chain's end
 * is NODATA, cached for the SOA's negative TTL like any other). The chain is
 * only walked when the reply carries an SOA: a positive reply rarely does.
 */
function isNegative(reply: Buffer, scan: Scan): boolean {
  if (scan.rcode === Rcode.NXDOMAIN || scan.ancount === 0) return true;
  return scan.soaTtl >= 0 && scan.qEnd >= 4 && negativeKind(reply, scan, u16(reply, scan.qEnd - 4)) !== POSITIVE;
}

export interface CacheOptions {
  size: number;
  /**
   * Bound on the bytes of the cached replies (--cache-max-bytes): a reply over
   * TCP can be 64 KiB, so an entry bound alone allows gigabytes. Least recently
   * used entries go until a new one fits; a reply bigger than the bound is not cached.
   */
  maxBytes?: number;
  /** Clamp every TTL into [minTtl, maxTtl] seconds when storing (dnsmasq --min/--max-cache-ttl). */
  minTtl: number;
  maxTtl: number;
  /** Cache NXDOMAIN/NODATA (RFC 2308); dnsmasq's --no-negcache turns it off. */
  negCache: boolean;
  /** Seconds to cache a negative answer without an SOA; -1: do not cache those. */
  negTtl: number;
  /** Seconds an expired entry may still be served stale (RFC 8767); 0: off. */
  serveStale: number;
  /** Refresh entries that are asked for in the last tenth of their life. */
  prefetch: boolean;
}

/**
 * A stored reply: bytes start..end of a shared slab. It is its own
 * ReplyLayout, so a hit allocates nothing but the answer.
 */
export interface CacheEntry extends ReplyLayout {
  reply: Buffer;
  /** performance.now() when stored. */
  storedAt: number;
  /** performance.now() when the entry stops being fresh. */
  expiresAt: number;
  /** When stale serving of it ends. */
  staleUntil: number;
  /** Start of the prefetch window. */
  prefetchAt: number;
  /** A refresh is already under way. */
  refreshing: boolean;
}

const SLAB_SIZE = 16 * 1024;

/**
 * Cached replies are packed into 16 KiB slabs instead of a Buffer each: a
 * Buffer costs ~200 bytes of heap plus a malloc'd backing store, more than the
 * reply itself. A slab lives as long as any entry in it; with LRU eviction and
 * TTL expiry entries leave in roughly the order they came, so slabs empty and
 * go. (Node's own 8 KiB pool is not used: short-lived packets share it, and
 * one cached slice would keep a whole slab of them alive.)
 */
class Slabs {
  private slab = Buffer.allocUnsafeSlow(SLAB_SIZE);
  private used = 0;

  copyIn(src: Buffer): [Buffer, number] {
    if (src.length > SLAB_SIZE / 4) {
      const own = Buffer.allocUnsafeSlow(src.length);
      src.copy(own);
      return [own, 0];
    }
    if (this.used + src.length > SLAB_SIZE) {
      this.slab = Buffer.allocUnsafeSlow(SLAB_SIZE);
      this.used = 0;
    }
    const at = this.used;
    src.copy(this.slab, at);
    this.used += src.length;
    return [this.slab, at];
  }
}

export class CacheStats {
  hits = 0;
  misses = 0;
  evictions = 0;
  stale = 0;
  inserts = 0;
  prefetches = 0;
}

export type Lookup =
  | { state: 'fresh'; entry: CacheEntry; age: number }
  | { state: 'stale'; entry: CacheEntry }
  | null;

/** The default --cache-max-bytes: 32 MiB, room for 512 replies of 64 KiB, far more than 10,000 ordinary ones need. */
export const DEFAULT_CACHE_MAX_BYTES = 32 * 1024 * 1024;

export class AnswerCache {
  private readonly map: LRUMapWithDelete<string, CacheEntry>;
  private readonly slabs = new Slabs();
  readonly stats = new CacheStats();
  private readonly maxBytes: number;
  /** Bytes of the replies held now (raced_cache_bytes). */
  bytes = 0;

  constructor(readonly opts: CacheOptions) {
    this.map = new LRUMapWithDelete<string, CacheEntry>(opts.size);
    this.maxBytes = opts.maxBytes ?? DEFAULT_CACHE_MAX_BYTES;
  }

  get size(): number {
    return this.map.size;
  }

  /** The least recently used key; mnemonist keeps its list in typed arrays and has no public accessor for the tail. */
  private oldestKey(): string | undefined {
    if (this.map.size === 0) return undefined;
    const m = this.map as unknown as { K: string[]; tail: number };
    return m.K[m.tail];
  }

  /** Evicts least recently used entries until `incoming` more bytes fit. */
  private makeRoom(incoming: number): void {
    while (this.bytes + incoming > this.maxBytes) {
      const key = this.oldestKey();
      if (key === undefined) break;
      const old = this.map.get(key);
      this.map.delete(key);
      if (old !== undefined) this.bytes -= old.end - old.start;
      this.stats.evictions++;
    }
  }

  lookup(key: string, now: number): Lookup {
    const entry = this.map.get(key);
    if (entry === undefined) {
      this.stats.misses++;
      return null;
    }
    if (now < entry.expiresAt) {
      this.stats.hits++;
      return { state: 'fresh', entry, age: Math.floor((now - entry.storedAt) / 1000) };
    }
    this.stats.misses++;
    return now < entry.staleUntil ? { state: 'stale', entry } : null;
  }

  /** Whether a fresh hit should trigger a background refresh now. */
  wantsPrefetch(entry: CacheEntry, now: number): boolean {
    return this.opts.prefetch && !entry.refreshing && now >= entry.prefetchAt;
  }

  /** Lifetime in seconds raced gives this reply, or -1 when it is not cached. */
  ttlFor(reply: Buffer, scan: Scan): number {
    return this.life(scan, isNegative(reply, scan));
  }

  /** ttlFor with the reply's negativity already known (store() needs it twice: decided once). */
  private life(scan: Scan, negative: boolean): number {
    const o = this.opts;
    if (scan.rcode !== Rcode.NOERROR && scan.rcode !== Rcode.NXDOMAIN) return -1; // SERVFAIL & co.: see README
    let ttl: number;
    if (negative) {
      if (!o.negCache) return -1;
      // With a CNAME chain before the negative end, the chain's own TTLs bound the life too.
      if (scan.soaTtl >= 0) ttl = scan.ancount > 0 ? Math.min(scan.soaTtl, scan.minTtl) : scan.soaTtl;
      else if (o.negTtl >= 0) ttl = o.negTtl;
      else return -1;
    } else {
      ttl = scan.minTtl;
    }
    ttl = Math.min(Math.max(ttl, o.minTtl), o.maxTtl);
    return ttl > 0 ? ttl : -1;
  }

  /**
   * Stores a race's winning reply. Its TTL fields are clamped to the
   * entry's life in the stored copy, so a hit only counts them down. Returns
   * the entry, whose copy the waiting clients are then answered from, so the
   * first answer and later hits agree.
   */
  store(key: string, reply: Buffer, scan: Scan, now: number): CacheEntry | null {
    const negative = isNegative(reply, scan);
    const ttl = this.life(scan, negative);
    if (ttl < 0 || scan.ttls === null || reply.length > this.maxBytes) return null;
    const o = this.opts;
    // slice(): an exact-size copy; the scan's array was grown by push and has spare room.
    const entry = this.insert(key, reply, scan, now, now + ttl * 1000, scan.ttls.slice());
    const { reply: copy, start } = entry;
    for (const at of scan.ttls) {
      const t = copy.readUInt32BE(start + at);
      const clamped = negative ? Math.min(t, ttl) : Math.min(Math.max(t, o.minTtl), o.maxTtl);
      if (clamped !== t) copy.writeUInt32BE(clamped, start + at);
    }
    return entry;
  }

  /**
   * Puts back an entry read from the cache file (src/cache/persist.ts): its
   * bytes already hold the clamped TTLs; `storedAt` and `expiresAt` are on
   * this process's monotonic clock. The caller checked ttlFor(reply, scan) >= 0.
   */
  restore(key: string, reply: Buffer, scan: Scan, storedAt: number, expiresAt: number): void {
    if (scan.ttls === null || reply.length > this.maxBytes) return;
    // The scan's TTL array is this entry's alone (each scan makes a new one): kept as it is.
    this.insert(key, reply, scan, storedAt, expiresAt, scan.ttls);
  }

  private insert(key: string, reply: Buffer, scan: Scan, storedAt: number, expiresAt: number, ttls: number[]): CacheEntry {
    const replaced = this.map.peek(key);
    if (replaced !== undefined) {
      this.map.delete(key);
      this.bytes -= replaced.end - replaced.start;
    }
    this.makeRoom(reply.length);
    const [copy, start] = this.slabs.copyIn(reply);
    const entry: CacheEntry = {
      reply: copy,
      start,
      end: start + reply.length,
      opt: scan.opt,
      optEnd: scan.optEnd,
      ttls,
      storedAt,
      expiresAt,
      staleUntil: expiresAt + this.opts.serveStale * 1000,
      prefetchAt: expiresAt - (expiresAt - storedAt) / 10,
      refreshing: false,
    };
    const evicted = this.map.setpop(key, entry);
    if (evicted && evicted.evicted) {
      this.stats.evictions++;
      this.bytes -= evicted.value.end - evicted.value.start;
    }
    this.bytes += reply.length;
    this.stats.inserts++;
    return entry;
  }

  clear(): void {
    this.map.clear();
    this.bytes = 0;
  }

  /**
   * Every key and entry, least recently used first: the order a saved file is
   * loaded back in, so recency survives. Two flat arrays, not a pair per
   * entry: a save of 100,000 entries should not leave 100,000 objects to collect.
   */
  snapshot(): { keys: string[]; entries: CacheEntry[] } {
    const n = this.map.size;
    const keys: string[] = new Array(n);
    const entries: CacheEntry[] = new Array(n);
    let i = n;
    this.map.forEach((entry, key) => {
      keys[--i] = key;
      entries[i] = entry;
    });
    return { keys, entries };
  }

  /** Drops every entry for one name (any type, class, DO, CD); `wireName`: its lower-cased wire form. Returns how many went. */
  deleteName(wireName: Buffer): number {
    const prefix = wireName.toString('latin1');
    const doomed: string[] = [];
    // A key is the name, then type, class and one flags byte.
    this.map.forEach((_, key) => {
      if (key.length === prefix.length + 5 && key.startsWith(prefix)) doomed.push(key);
    });
    for (const key of doomed) {
      const old = this.map.peek(key);
      this.map.delete(key);
      if (old !== undefined) this.bytes -= old.end - old.start;
    }
    return doomed.length;
  }
}
