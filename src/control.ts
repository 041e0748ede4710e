// --control-socket: a unix socket (mode 0600, never a network address) on
// which the running raced takes operators' commands from the same binary
// (`raced cache flush [NAME]`, `raced cache dump`, `raced cache save`,
// `raced reload`). Line protocol: the client sends one command line; raced
// answers with the command's output lines, then one last line, `ok` or
// `error: REASON`, and closes.
import net from 'node:net';
import { existsSync, lstatSync, chmodSync, unlinkSync } from 'node:fs';
import type { Logger } from './log.js';
import type { AnswerCache } from './cache/cache.js';
import { nameToText, typeName } from './wire/message.js';
import { rcodeName } from './wire/constants.js';
import { textToWire } from './wire/build.js';
import { normalName } from './wire/names.js';
import { printable } from './guard.js';

export class ControlError extends Error {
  override name = 'ControlError';
}

/** What a command does; each resolves to the output lines (without the final status line) or rejects with the reason. */
export interface ControlHandlers {
  flush(name: Buffer | null): Promise<string[]>;
  dump(): Promise<string[]>;
  save(): Promise<string[]>;
  reload(): Promise<string[]>;
}

const MAX_LINE = 1024;
const IDLE_MS = 5000;

/** A domain name as the lower-cased wire form the cache keys start with; throws ControlError for a bad one. */
export function nameToWire(text: string): Buffer {
  const name = normalName(text.trim());
  if (name === '') return Buffer.from([0]);
  for (const l of name.split('.')) {
    if (l.length === 0 || l.length > 63) throw new ControlError(`not a domain name: '${printable(text, 80)}'`);
    if (/[^\x21-\x7e]/.test(l) || l.includes('\\')) throw new ControlError(`not a domain name (escapes and odd bytes are not supported): '${printable(text, 80)}'`);
  }
  const wire = textToWire(name);
  if (wire.length > 255) throw new ControlError(`not a domain name (longer than 255 bytes): '${printable(text, 80)}'`);
  return wire;
}

/**
 * One line per entry, least recently used first: name, type, RCODE, TTL left
 * in seconds; then `stale` for an entry past its TTL (kept by --serve-stale),
 * and `do`/`cd` for the entries kept apart for DNSSEC-asking clients; a class
 * other than IN is said as CLASSn after the type.
 */
export async function dumpLines(cache: AnswerCache, now: number): Promise<string[]> {
  const lines: string[] = [];
  const scratch = Buffer.alloc(12 + 260);
  const { keys, entries } = cache.snapshot();
  for (let i = 0; i < keys.length; i++) {
    // 100,000 lines take a while to format: answering goes on between chunks (the snapshot does not change).
    if (i > 0 && i % 2000 === 0) await new Promise((r) => setImmediate(r));
    const key = keys[i]!;
    const e = entries[i]!;
    const n = scratch.write(key, 12, 'latin1');
    const nameEnd = 12 + n - 5;
    const type = scratch.readUInt16BE(nameEnd);
    const cls = scratch.readUInt16BE(nameEnd + 2);
    const flags = scratch[nameEnd + 4]!;
    scratch[nameEnd] = 0; // nameToText stops at the root label
    const rcode = e.reply[e.start + 3]! & 0x0f;
    const left = Math.floor((e.expiresAt - now) / 1000);
    let line = `${nameToText(scratch)} ${typeName(type)}${cls === 1 ? '' : ` CLASS${cls}`} ${rcodeName(rcode)} ${Math.max(0, left)}`;
    if (now >= e.expiresAt) line += ' stale';
    if (flags & 1) line += ' do';
    if (flags & 2) line += ' cd';
    lines.push(line);
  }
  return lines;
}

/** Runs one command line against the handlers. */
export async function runCommand(line: string, h: ControlHandlers): Promise<string[]> {
  const words = line.trim().split(/\s+/);
  const [a, b, c, ...rest] = words;
  if (a === 'cache' && b === 'flush' && rest.length === 0) return h.flush(c === undefined ? null : nameToWire(c));
  if (a === 'cache' && b === 'dump' && c === undefined) return h.dump();
  if (a === 'cache' && b === 'save' && c === undefined) return h.save();
  if (a === 'reload' && b === undefined) return h.reload();
  throw new ControlError(`unknown command '${printable(line, 80)}' (cache flush [NAME] | cache dump | cache save | reload)`);
}

/**
 * Listens on `path`, created mode 0600 (umask set around the bind, then
 * chmod to be sure). A socket file left by a raced that is gone is replaced;
 * one a live raced answers on is an error, as is anything else at the path.
 */
export async function startControl(path: string, h: ControlHandlers, log: Logger): Promise<net.Server> {
  if (Buffer.byteLength(path) > 107) throw new ControlError(`--control-socket ${path}: longer than a unix socket path may be (107 bytes)`);
  if (existsSync(path)) {
    if (!lstatSync(path).isSocket()) throw new ControlError(`--control-socket ${path}: exists and is not a socket`);
    if (await answers(path)) throw new ControlError(`--control-socket ${path}: another raced is listening there`);
    unlinkSync(path);
  }
  const server = net.createServer((sock) => serve(sock, h, log));
  const old = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    throw new ControlError(`--control-socket ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  } finally {
    process.umask(old);
  }
  chmodSync(path, 0o600);
  server.on('error', (err) => log.warn(`control socket ${path}: ${err.message}`));
  return server;
}

function serve(sock: net.Socket, h: ControlHandlers, log: Logger): void {
  let buf = '';
  let done = false;
  sock.setEncoding('latin1');
  sock.setTimeout(IDLE_MS, () => sock.destroy());
  sock.on('error', () => {});
  sock.on('data', (d: string) => {
    if (done) return;
    buf += d;
    const nl = buf.indexOf('\n');
    if (nl < 0 && buf.length <= MAX_LINE) return;
    done = true;
    if (nl < 0 || nl > MAX_LINE) return void sock.end(`error: command line longer than ${MAX_LINE} bytes\n`);
    const line = buf.slice(0, nl);
    runCommand(line, h).then(
      (out) => {
        log.info(`control: ${printable(line.trim(), 200)}`);
        writeLines(sock, out);
      },
      (err: Error) => {
        // Messages are raced's own (a client's bytes in them are escaped already): one line.
        sock.end(`error: ${err.message.replace(/[\r\n]+/g, ' ')}\n`);
      },
    );
  });
}

/** Output in chunks, honouring the socket's back-pressure (a dump can be megabytes). */
function writeLines(sock: net.Socket, lines: string[]): void {
  let i = 0;
  const more = (): void => {
    while (i < lines.length) {
      const chunk = lines.slice(i, i + 2000).join('\n') + '\n';
      i += 2000;
      if (!sock.write(chunk)) return void sock.once('drain', more);
    }
    sock.end('ok\n');
  };
  more();
}

/** Whether something accepts connections at `path`. */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/**
 * The client side (`raced cache …`, `raced reload`): sends `command`,
 * resolves to the output, rejects with a ControlError that says what is
 * wrong — nothing listening, no permission, or raced's own error.
 */
export function sendCommand(path: string, command: string, timeoutMs = 30000): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(path);
    let out = '';
    s.setEncoding('latin1');
    s.setTimeout(timeoutMs, () => {
      s.destroy();
      reject(new ControlError(`no answer from raced on ${path} within ${timeoutMs / 1000} s`));
    });
    s.on('connect', () => s.write(command + '\n'));
    s.on('data', (d: string) => (out += d));
    s.on('error', (err: NodeJS.ErrnoException) => {
      const why =
        err.code === 'ENOENT' || err.code === 'ECONNREFUSED'
          ? `nothing listens on ${path} (is raced running with --control-socket ${path}?)`
          : err.code === 'EACCES'
            ? `permission denied on ${path} (the socket is for the user raced was started as)`
            : `cannot connect to ${path}: ${err.code ?? err.message}`;
      reject(new ControlError(why));
    });
    s.on('end', () => {
      const lines = out.split('\n');
      if (lines.at(-1) === '') lines.pop();
      const last = lines.pop();
      if (last === 'ok') resolve(lines.length > 0 ? lines.join('\n') + '\n' : '');
      else if (last?.startsWith('error: ')) reject(new ControlError(last.slice(7)));
      else reject(new ControlError(`raced on ${path} closed the connection before answering`));
    });
  });
}

/** The commands of a single raced process (--workers 1, or one worker). */
export function localHandlers(cache: AnswerCache | null, cacheFile: { path: string; save(): Promise<number> } | null, now: () => number): ControlHandlers {
  return {
    flush: (name) => {
      if (cache === null) return Promise.resolve(['no cache (--cache-size 0)']);
      if (name === null) {
        const n = cache.size;
        cache.clear();
        return Promise.resolve([`flushed ${n} entries`]);
      }
      const n = cache.deleteName(name);
      return Promise.resolve([`flushed ${n} entries`]);
    },
    dump: () => (cache === null ? Promise.resolve([]) : dumpLines(cache, now())),
    save: async () => {
      if (cacheFile === null) throw new ControlError('no --cache-file to save to');
      const n = await cacheFile.save();
      return [`saved ${n} entries to ${cacheFile.path}`];
    },
    reload: () => {
      // Exactly what SIGHUP does, through the same handler (and, under --workers, the primary's forwarding).
      process.kill(process.pid, 'SIGHUP');
      return Promise.resolve(['reloading']);
    },
  };
}
