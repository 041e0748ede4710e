// Minimal leveled logger to stderr. Callers check `enabled` before building
// a message on hot paths so that a quiet logger costs nothing.
//
// A log line must never stop or slow answering: a line that cannot be
// written now (full disk, a pipe whose reader left or stopped reading, a
// non-blocking descriptor that would block) is dropped and counted, never
// thrown, never queued without bound.
import fs from 'node:fs';

export const LOG_LEVELS = ['error', 'warn', 'info', 'debug'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Writes one line (no newline); false when it was dropped. */
export type LineWriter = (line: string) => unknown;

/** Bytes a slow stream reader may have queued before further lines are dropped. */
const MAX_QUEUED = 64 * 1024;
/** Longer lines are cut: a pipe write up to PIPE_BUF (4096) is atomic, so lines never interleave or tear. */
const MAX_LINE = 4000;

/**
 * A writer for file descriptor `fd` that never blocks and never throws.
 * Regular files and character devices: write(2) at once (ENOSPC drops the
 * line; the next one is tried again). A pipe: its own non-blocking open of
 * the same pipe, so a stalled reader means EAGAIN (dropped), a reader gone
 * EPIPE (dropped; Node ignores SIGPIPE). Anything else (a socket, e.g.
 * journald's): Node's stream, its 'error' swallowed and its queue bounded.
 */
export function fdWriter(fd: number, onDrop: () => void): (line: string) => boolean {
  // Node's own writes to stderr (warnings) must not crash raced either.
  if (fd === 2) process.stderr.on('error', () => {});
  let kind: 'direct' | 'stream' = 'stream';
  let wfd = fd;
  try {
    const st = fs.fstatSync(fd);
    if (st.isFile() || st.isCharacterDevice()) kind = 'direct';
    else if (st.isFIFO()) {
      wfd = fs.openSync(`/proc/self/fd/${fd}`, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
      kind = 'direct';
    }
  } catch {
    kind = 'stream';
    wfd = fd;
  }
  if (kind === 'direct') {
    return (line) => {
      try {
        fs.writeSync(wfd, line + '\n');
        return true;
      } catch {
        onDrop();
        return false;
      }
    };
  }
  const stream: NodeJS.WritableStream & { destroyed: boolean; writableLength: number } =
    fd === 2 ? process.stderr : fd === 1 ? process.stdout : fs.createWriteStream('', { fd });
  let broken = false;
  stream.on('error', () => {
    broken = true;
  });
  return (line) => {
    if (broken || stream.destroyed || stream.writableLength > MAX_QUEUED) {
      onDrop();
      return false;
    }
    stream.write(line + '\n');
    return true;
  };
}

export interface LoggerOptions {
  /** Prefix each line with an ISO 8601 timestamp (not when journald, which stamps lines itself, reads them). */
  timestamps?: boolean;
}

/**
 * Does journald read stderr? systemd sets JOURNAL_STREAM to the device and
 * inode of the stream it connected; a child's redirected stderr no longer matches.
 */
export function stderrIsJournal(env: NodeJS.ProcessEnv = process.env): boolean {
  const js = env.JOURNAL_STREAM;
  if (!js) return false;
  const [dev, ino] = js.split(':');
  try {
    const st = fs.fstatSync(2);
    return String(st.dev) === dev && String(st.ino) === ino;
  } catch {
    return false;
  }
}

export class Logger {
  private readonly rank: number;
  /** Lines that could not be written (`raced_log_dropped_total`). */
  dropped = 0;
  private readonly out: (line: string) => boolean;
  private readonly timestamps: boolean;

  /** `write`: where lines go (tests); by default stderr, never blocking. */
  constructor(level: LogLevel, write?: LineWriter, opts: LoggerOptions = {}) {
    this.rank = LOG_LEVELS.indexOf(level);
    this.timestamps = opts.timestamps ?? false;
    if (write) {
      this.out = (line) => {
        try {
          return write(line) !== false || (this.dropped++, false);
        } catch {
          this.dropped++;
          return false;
        }
      };
    } else {
      this.out = fdWriter(2, () => this.dropped++);
    }
  }

  enabled(level: LogLevel): boolean {
    return LOG_LEVELS.indexOf(level) <= this.rank;
  }

  private emit(level: LogLevel, msg: string): void {
    if (!this.enabled(level)) return;
    let line = `raced[${process.pid}] ${level}: ${msg}`;
    if (this.timestamps) line = `${new Date().toISOString()} ${line}`;
    if (line.length > MAX_LINE) line = line.slice(0, MAX_LINE - 3) + '...';
    this.out(line);
  }

  error(msg: string): void {
    this.emit('error', msg);
  }
  warn(msg: string): void {
    this.emit('warn', msg);
  }
  info(msg: string): void {
    this.emit('info', msg);
  }
  debug(msg: string): void {
    this.emit('debug', msg);
  }
}
