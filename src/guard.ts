// The last resort: an exception nobody expected while handling one query
// (a listener, the pipeline's entry, an upstream reply) drops that query,
// is counted and logged at a bounded rate, and never ends the daemon. Parse
// failures are not meant to get here (they become FORMERR or a lost leg);
// this is for the bug that was not found yet, so that one crafted packet
// cannot be turned into a repeatable outage.
import type { Logger } from './log.js';

/** Where a fault was caught; the `stage` label of raced_query_errors_total. */
export const FAULT_STAGES = ['udp', 'tcp', 'pipeline', 'upstream'] as const;
export type FaultStage = (typeof FAULT_STAGES)[number];

/** At most this many fault lines per window; the rest are counted and summed up in one line. */
const LOG_BURST = 5;
const LOG_WINDOW_MS = 10_000;

/** Logs at most `burst` lines per `windowMs`; the next line after a quiet spell says how many were left out. */
export class RateLimitedLog {
  private windowStart = -Infinity;
  private inWindow = 0;
  private suppressed = 0;

  constructor(
    private readonly write: (line: string) => void,
    private readonly burst = LOG_BURST,
    private readonly windowMs = LOG_WINDOW_MS,
    private readonly now: () => number = Date.now,
  ) {}

  /** `line` is only built when it will be written. */
  log(line: () => string): void {
    const t = this.now();
    if (t - this.windowStart >= this.windowMs) {
      if (this.suppressed > 0) this.write(`(${this.suppressed} similar lines left out in the last ${Math.round((t - this.windowStart) / 1000)} s)`);
      this.windowStart = t;
      this.inWindow = 0;
      this.suppressed = 0;
    }
    if (this.inWindow >= this.burst) {
      this.suppressed++;
      return;
    }
    this.inWindow++;
    this.write(line());
  }
}

export class QueryGuard {
  /** Faults caught per stage (raced_query_errors_total). */
  readonly counts: Record<FaultStage, number> = { udp: 0, tcp: 0, pipeline: 0, upstream: 0 };
  private readonly limited: RateLimitedLog;

  constructor(log: Logger) {
    this.limited = new RateLimitedLog((line) => log.error(line));
  }

  /** Records a caught exception; the query it belonged to is dropped by the caller. */
  fault(stage: FaultStage, err: unknown, from?: string): void {
    this.counts[stage]++;
    this.limited.log(() => `${stage}: query${from ? ` from ${from}` : ''} dropped after an unexpected error: ${describe(err)}`);
  }
}

/** One line: the error's message and the first frames of its stack, control bytes escaped. */
export function describe(err: unknown): string {
  const e = err instanceof Error ? err : new Error(String(err));
  const frames = (e.stack ?? '').split('\n').slice(1, 4).map((l) => l.trim()).join(' < ');
  return printable(`${e.name}: ${e.message}${frames ? ` (${frames})` : ''}`, 600);
}

/**
 * A value fit for a log line: control bytes, DEL and backslash escaped
 * (\n, \t, \xNN), and cut to `max` characters with the original length
 * noted, so a file line or a packet cannot flood or garble the log.
 */
export function printable(s: string, max = 200): string {
  const cut = s.length > max;
  const head = cut ? s.slice(0, max) : s;
  // eslint-disable-next-line no-control-regex
  const esc = head.replace(/[\x00-\x1f\x7f\\\u0080-\u009f\u2028\u2029]/g, (c) => {
    if (c === '\\') return '\\\\';
    if (c === '\n') return '\\n';
    if (c === '\t') return '\\t';
    if (c === '\r') return '\\r';
    const code = c.charCodeAt(0);
    return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
  });
  return cut ? `${esc}… (${s.length} characters)` : esc;
}

/** Uncaught errors at process level, by kind (raced_uncaught_errors_total). */
export const processFaults = { exception: 0, rejection: 0 };

/** More uncaught exceptions than this within UNCAUGHT_WINDOW_MS: state is no longer trusted, exit. */
const UNCAUGHT_LIMIT = 20;
const UNCAUGHT_WINDOW_MS = 60_000;

/**
 * The process-level policy. An unhandled rejection ended one async task
 * (search's tries, a probe): it is logged and counted and raced goes on, as
 * nothing else was interrupted. An uncaught exception unwound some event
 * handler part way, so whatever it was changing may be half done; the query
 * paths have their own guards, so what gets here is a timer or a connection
 * of some subsystem. raced logs it, counts it and goes on serving (dying is
 * an outage for every client, and with Restart=always a repeatable one), but
 * a burst of them (more than 20 in a minute) means a broken state that keeps
 * failing: then `fatal` runs (restores what must be restored) and raced
 * exits with status 70 for the supervisor to restart it clean.
 */
export function installProcessGuard(log: Logger, fatal: (err: unknown) => void): void {
  const limited = new RateLimitedLog((line) => log.error(line));
  let recent: number[] = [];
  process.on('unhandledRejection', (reason) => {
    processFaults.rejection++;
    limited.log(() => `unhandled rejection (raced goes on): ${describe(reason)}`);
  });
  process.on('uncaughtException', (err) => {
    processFaults.exception++;
    const now = Date.now();
    recent = recent.filter((t) => now - t < UNCAUGHT_WINDOW_MS);
    recent.push(now);
    if (recent.length > UNCAUGHT_LIMIT) {
      log.error(`uncaught exception, ${recent.length} within a minute: stopping: ${describe(err)}`);
      fatal(err);
      process.exit(70);
    }
    limited.log(() => `uncaught exception (raced goes on): ${describe(err)}`);
  });
}
