// The cache file (--cache-file): the answer cache written out on SIGTERM and
// every --cache-save-interval, and read back at start before any listener
// answers. Entries live on the monotonic clock, which restarts with the
// process: the file holds the wall-clock time of the save and, per entry, how
// long before it the entry was stored and how long after it the entry expires.
// Loading ages every entry by the wall-clock time since the save — the one
// place in raced where the wall clock counts.
//
// Format (all integers big-endian), version 1:
//   header, 40 bytes: "RACEDCF\n", u32 version, u32 CRC-32 (of the body,
//   then of header bytes 16..40), u32 entries, u32 0, f64 saved-at (Unix
//   ms), f64 body length.
//   body, one record per entry, least recently used first:
//   u16 key length, u16 reply length, f64 ms stored before the save, f64 ms
//   of life left at the save (negative: stale), the key (latin1), the reply —
//   the cached wire bytes as they are, TTLs clamped when first stored.
// A file that fails any check is ignored whole (one log line); each reply is
// also parsed again, so a damaged one is never served.
import { crc32 } from 'node:zlib';
import { constants, readFileSync } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { AnswerCache, CacheEntry } from './cache.js';
import { newScan, scanMessage, type Scan } from '../wire/message.js';
import { ownOptSize } from '../wire/build.js';
import { HEADER_LEN } from '../wire/constants.js';
import type { Logger } from '../log.js';

const MAGIC = Buffer.from('RACEDCF\n', 'latin1');
export const FORMAT_VERSION = 1;
export const HEADER_SIZE = 40;
const RECORD_FIXED = 20;
/** Records encoded between two turns of the event loop while saving: a few milliseconds of work. */
const CHUNK = 1000;

export class CacheFileError extends Error {
  override name = 'CacheFileError';
}

const nextTurn = (): Promise<void> => new Promise((r) => setImmediate(r));

/**
 * The file's bytes as a list of buffers (header first), `entries` least
 * recently used first. With `yieldEvery`, gives the event loop a turn every
 * that many records, so answering goes on during a save.
 */
export async function encodeEntries(
  snap: { keys: readonly string[]; entries: readonly CacheEntry[] },
  wallNow: number,
  monoNow: number,
  yieldEvery = CHUNK,
  steps: { longest: number } = { longest: 0 },
): Promise<Buffer[]> {
  const { keys, entries } = snap;
  const parts: Buffer[] = [];
  let crc = 0;
  let bodyLen = 0;
  for (let from = 0; from < entries.length; from += yieldEvery) {
    if (from > 0) await nextTurn();
    const began = performance.now();
    const to = Math.min(entries.length, from + yieldEvery);
    let size = 0;
    for (let i = from; i < to; i++) {
      const e = entries[i]!;
      size += RECORD_FIXED + keys[i]!.length + (e.end - e.start);
    }
    const buf = Buffer.allocUnsafe(size);
    let off = 0;
    for (let i = from; i < to; i++) {
      const key = keys[i]!;
      const e = entries[i]!;
      const len = e.end - e.start;
      buf.writeUInt16BE(key.length, off);
      buf.writeUInt16BE(len, off + 2);
      buf.writeDoubleBE(monoNow - e.storedAt, off + 4);
      buf.writeDoubleBE(e.expiresAt - monoNow, off + 12);
      off += RECORD_FIXED;
      off += buf.write(key, off, 'latin1');
      off += e.reply.copy(buf, off, e.start, e.end);
    }
    crc = crc32(buf, crc);
    bodyLen += size;
    parts.push(buf);
    steps.longest = Math.max(steps.longest, performance.now() - began);
  }
  const header = Buffer.alloc(HEADER_SIZE);
  MAGIC.copy(header, 0);
  header.writeUInt32BE(FORMAT_VERSION, 8);
  header.writeUInt32BE(entries.length, 16);
  header.writeDoubleBE(wallNow, 24);
  header.writeDoubleBE(bodyLen, 32);
  // The body's CRC, extended over the header's fields after it.
  header.writeUInt32BE(crc32(header.subarray(16), crc), 12);
  return [header, ...parts];
}

export interface Record {
  key: string;
  /** A view of the file's bytes. */
  reply: Buffer;
  /** The reply read again; reused from one record to the next, its `ttls` array is the record's own. */
  scan: Scan;
  /** Milliseconds before the save that the entry was stored. */
  storedAgo: number;
  /** Milliseconds of life it had left at the save; negative: already stale. */
  expiresIn: number;
}

/**
 * Checks a whole file and hands over its records one by one, least recently
 * used first; returns the wall-clock time of the save. Throws CacheFileError
 * saying what is wrong — possibly after some records went out, so a caller
 * that keeps them must drop them again.
 */
export function readRecords(buf: Buffer, each: (r: Record) => void): number {
  if (buf.length < HEADER_SIZE) {
    if (buf.length >= 8 && !buf.subarray(0, 8).equals(MAGIC)) throw new CacheFileError('not a raced cache file');
    throw new CacheFileError(`truncated (${buf.length} bytes, shorter than the header)`);
  }
  if (!buf.subarray(0, 8).equals(MAGIC)) throw new CacheFileError('not a raced cache file');
  const version = buf.readUInt32BE(8);
  if (version !== FORMAT_VERSION) throw new CacheFileError(`format version ${version}, this raced reads version ${FORMAT_VERSION}`);
  const count = buf.readUInt32BE(16);
  const savedAt = buf.readDoubleBE(24);
  const bodyLen = buf.readDoubleBE(32);
  if (!Number.isSafeInteger(bodyLen) || bodyLen < 0) throw new CacheFileError('corrupt header');
  if (buf.length - HEADER_SIZE < bodyLen) throw new CacheFileError(`truncated (${buf.length} of ${HEADER_SIZE + bodyLen} bytes)`);
  if (buf.length - HEADER_SIZE > bodyLen) throw new CacheFileError(`corrupt (${buf.length - HEADER_SIZE - bodyLen} bytes after the last entry)`);
  if (crc32(buf.subarray(16, HEADER_SIZE), crc32(buf.subarray(HEADER_SIZE))) !== buf.readUInt32BE(12)) throw new CacheFileError('corrupt (checksum mismatch)');
  if (!Number.isFinite(savedAt)) throw new CacheFileError('corrupt header');
  const scan = newScan();
  const rec: Record = { key: '', reply: buf, scan, storedAgo: 0, expiresIn: 0 };
  let off = HEADER_SIZE;
  for (let i = 0; i < count; i++) {
    if (off + RECORD_FIXED > buf.length) throw new CacheFileError(`corrupt (entry ${i + 1} of ${count} runs past the end)`);
    const keyLen = buf.readUInt16BE(off);
    const replyLen = buf.readUInt16BE(off + 2);
    rec.storedAgo = buf.readDoubleBE(off + 4);
    rec.expiresIn = buf.readDoubleBE(off + 12);
    off += RECORD_FIXED;
    if (off + keyLen + replyLen > buf.length) throw new CacheFileError(`corrupt (entry ${i + 1} of ${count} runs past the end)`);
    rec.key = buf.toString('latin1', off, off + keyLen);
    off += keyLen;
    rec.reply = buf.subarray(off, off + replyLen);
    off += replyLen;
    if (!Number.isFinite(rec.storedAgo) || !Number.isFinite(rec.expiresIn) || scanMessage(rec.reply, true, scan) === null || !replyMatchesKey(rec.reply, scan, rec.key)) {
      throw new CacheFileError(`corrupt (entry ${i + 1} of ${count} is not a reply to its question)`);
    }
    each(rec);
  }
  if (off !== buf.length) throw new CacheFileError(`corrupt (${buf.length - off} bytes after the last entry)`);
  return savedAt;
}

/** Every record's key, for tests and tools; throws as readRecords does. */
export function fileKeys(buf: Buffer): string[] {
  const keys: string[] = [];
  readRecords(buf, (r) => keys.push(r.key));
  return keys;
}

/** A whole reply (QR=1, one question, nothing after the last record) whose question is the key's. */
function replyMatchesKey(reply: Buffer, scan: Scan, key: string): boolean {
  if (scan.end !== reply.length || scan.qEnd < 0 || (reply[2]! & 0x80) === 0) return false;
  if (key.length !== scan.qEnd - HEADER_LEN + 1) return false;
  for (let i = HEADER_LEN; i < scan.qEnd; i++) {
    let c = reply[i]!;
    // The name part of the key is lower case; type and class are as they are.
    if (i < scan.qNameEnd && c >= 0x41 && c <= 0x5a) c |= 0x20;
    if (key.charCodeAt(i - HEADER_LEN) !== c) return false;
  }
  return true;
}

export interface LoadResult {
  loaded: number;
  expired: number;
  /** Not cacheable under the options raced runs with now (--no-negcache, ...). */
  refused: number;
  savedAt: number;
}

/**
 * Fills `cache` from a file's bytes. Every entry is aged by the wall-clock
 * time since the save (a clock that went back counts as no time); those past
 * expiry and past --serve-stale are dropped. The OPT of each reply gets this
 * raced's --edns-packet-max, as replies stored now do.
 */
export function loadInto(cache: AnswerCache, buf: Buffer, ednsPacketMax: number, wallNow = Date.now(), monoNow = performance.now()): LoadResult {
  const res: LoadResult = { loaded: 0, expired: 0, refused: 0, savedAt: 0 };
  const staleMs = cache.opts.serveStale * 1000;
  // Known only once the file is read: the first pass (readRecords) says when, entries come in the same pass.
  const savedAt = buf.length >= HEADER_SIZE ? buf.readDoubleBE(24) : 0;
  const since = Number.isFinite(savedAt) ? Math.max(0, wallNow - savedAt) : 0;
  try {
    res.savedAt = readRecords(buf, (r) => {
      const expiresAt = monoNow - since + r.expiresIn;
      if (expiresAt + staleMs <= monoNow) {
        res.expired++;
        return;
      }
      if (cache.ttlFor(r.reply, r.scan) < 0) {
        res.refused++;
        return;
      }
      ownOptSize(r.reply, r.scan, ednsPacketMax);
      cache.restore(r.key, r.reply, r.scan, monoNow - since - r.storedAgo, expiresAt);
      res.loaded++;
    });
  } catch (err) {
    // Nothing of a file that fails a check stays.
    cache.clear();
    throw err;
  }
  return res;
}

/** Writes `parts` to `path` so that a reader sees the old file or the new one whole: temporary file, fsync, rename, fsync of the directory. */
export async function writeAtomic(path: string, parts: readonly Buffer[]): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  // O_NOFOLLOW: a symlink planted at the temporary name does not redirect the write.
  const fh = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o600);
  try {
    // A leftover temporary file keeps its old mode through O_CREAT: set it.
    await fh.chmod(0o600);
    for (const p of parts) {
      for (let off = 0; off < p.length; ) off += (await fh.write(p, off, p.length - off)).bytesWritten;
    }
    await fh.sync();
  } catch (err) {
    await fh.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    throw err;
  }
  await fh.close();
  try {
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => {});
    throw err;
  }
  // The rename itself is durable only once the directory is synced.
  const dir = await open(dirname(path), constants.O_RDONLY);
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

/** --cache-file: loads at start, saves on a timer, on request and at the end. */
export class CacheFile {
  private timer: NodeJS.Timeout | null = null;
  private saving: Promise<number> | null = null;
  /** Set once loading ran: a raced that failed to start must not overwrite a good file with an empty cache. */
  private loaded = false;

  constructor(
    readonly path: string,
    private readonly cache: AnswerCache,
    private readonly log: Logger,
    private readonly ednsPacketMax: number,
  ) {}

  /** Synchronous: raced answers nothing until this returns. Never throws; what went wrong is one log line. */
  load(): void {
    this.loaded = true;
    let buf: Buffer;
    try {
      buf = readFileSync(this.path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') this.log.info(`cache file ${this.path}: none yet; starting with an empty cache`);
      else this.log.warn(`cache file ${this.path}: cannot read it (${code ?? (err as Error).message}); starting with an empty cache`);
      return;
    }
    const t0 = performance.now();
    const cpu0 = process.cpuUsage();
    try {
      const r = loadInto(this.cache, buf, this.ednsPacketMax);
      const cpu = process.cpuUsage(cpu0);
      const ago = Math.round(Math.max(0, Date.now() - r.savedAt) / 1000);
      const dropped = [r.expired > 0 ? `${r.expired} expired` : '', r.refused > 0 ? `${r.refused} not cacheable with these options` : ''].filter(Boolean).join(', ');
      this.log.info(
        `cache file ${this.path}: loaded ${r.loaded} entries saved ${ago} s ago in ${Math.round(performance.now() - t0)} ms (${Math.round((cpu.user + cpu.system) / 1000)} ms CPU)` +
          (dropped ? ` (dropped ${dropped})` : ''),
      );
    } catch (err) {
      if (!(err instanceof CacheFileError)) throw err;
      this.cache.clear();
      this.log.warn(`cache file ${this.path}: ${err.message}; ignored, starting with an empty cache`);
    }
  }

  /** Saves every `seconds` (0: only when asked and at the end). */
  startTimer(seconds: number): void {
    if (seconds <= 0) return;
    this.timer = setInterval(() => {
      this.save().catch(() => {});
    }, seconds * 1000);
    this.timer.unref();
  }

  /** Writes the file now; a save already running is waited for instead. Resolves to the number of entries, rejects with the reason (also logged). */
  save(): Promise<number> {
    if (!this.loaded) return Promise.reject(new Error('the cache file was not loaded yet'));
    this.saving ??= this.write().finally(() => {
      this.saving = null;
    });
    return this.saving;
  }

  private async write(): Promise<number> {
    const t0 = performance.now();
    const snap = this.cache.snapshot();
    // The longest stretch that held up answering: the snapshot, or one chunk of records.
    const steps = { longest: performance.now() - t0 };
    try {
      await writeAtomic(this.path, await encodeEntries(snap, Date.now(), performance.now(), CHUNK, steps));
    } catch (err) {
      const why = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      this.log.warn(`cache file ${this.path}: cannot write it (${why})`);
      throw new Error(`cannot write ${this.path}: ${why}`);
    }
    this.log.debug(`cache file ${this.path}: saved ${snap.keys.length} entries in ${Math.round(performance.now() - t0)} ms (longest step ${steps.longest.toFixed(1)} ms)`);
    return snap.keys.length;
  }

  /** The final save, after the drain: the timer stops first. */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (!this.loaded) return;
    await this.saving?.catch(() => {});
    const n = await this.save().catch(() => -1);
    if (n >= 0) this.log.info(`cache file ${this.path}: saved ${n} entries`);
  }
}
