// Minimal leveled logger to stderr. Callers check `enabled` before building
// a message on hot paths so that a quiet logger costs nothing.

export const LOG_LEVELS = ['error', 'warn', 'info', 'debug'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export class Logger {
  private readonly rank: number;

  constructor(
    level: LogLevel,
    private readonly write: (line: string) => void = (line) => process.stderr.write(line + '\n'),
  ) {
    this.rank = LOG_LEVELS.indexOf(level);
  }

  enabled(level: LogLevel): boolean {
    return LOG_LEVELS.indexOf(level) <= this.rank;
  }

  private emit(level: LogLevel, msg: string): void {
    if (this.enabled(level)) this.write(`raced[${process.pid}] ${level}: ${msg}`);
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
