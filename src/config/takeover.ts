// --default-resolver (go-dnsmasq's name): raced becomes the host's only
// nameserver, and gives resolv.conf back when it stops. Every step leaves a
// working resolv.conf: the original is saved before anything is written,
// writes are atomic (temp file + rename) or, where resolv.conf is a bind
// mount (containers) and rename fails, in place; a start after a crash finds
// raced's own file and takes the original from the backup.
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { parseResolvConf, type ResolvConf } from './resolv.js';

export const MARKER = '# Written by raced --default-resolver';

export class ResolvTakeover {
  readonly backup: string;
  private installed = false;

  constructor(
    readonly path: string,
    backup?: string,
  ) {
    this.backup = backup ?? `${path}.raced-orig`;
  }

  /** The host's own resolv.conf text: the backup if the current file is raced's (a crash left it). */
  originalText(): string {
    const current = readFileSync(this.path, 'utf8');
    if (current.startsWith(MARKER) && existsSync(this.backup)) return readFileSync(this.backup, 'utf8');
    return current;
  }

  original(): ResolvConf {
    return parseResolvConf(this.originalText());
  }

  /** Saves the original, then points resolv.conf at `nameserver` keeping search and options. */
  install(nameserver: string): void {
    const text = this.originalText();
    const conf = parseResolvConf(text);
    if (!readFileSync(this.path, 'utf8').startsWith(MARKER)) writeAtomic(this.backup, text);
    const lines = [
      `${MARKER} (pid ${process.pid}, ${new Date().toISOString()}).`,
      `# The original is kept in ${this.backup} and is put back when raced stops.`,
      `nameserver ${nameserver}`,
      ...(conf.search.length ? [`search ${conf.search.join(' ')}`] : []),
      ...(conf.options.length ? [`options ${conf.options.join(' ')}`] : []),
      '',
    ];
    writeAtomic(this.path, lines.join('\n'));
    this.installed = true;
  }

  /** Puts the original back (only if raced installed its own). Safe to call twice. */
  restore(): void {
    if (!this.installed) return;
    this.installed = false;
    if (!existsSync(this.backup)) return;
    const current = readFileSync(this.path, 'utf8');
    // Someone else rewrote resolv.conf meanwhile (DHCP, an admin): theirs stays.
    if (current.startsWith(MARKER)) writeAtomic(this.path, readFileSync(this.backup, 'utf8'));
    rmSync(this.backup, { force: true });
  }
}

/** temp + rename; where rename cannot replace the file (a bind mount: EBUSY, EXDEV), write in place. */
export function writeAtomic(path: string, text: string): void {
  const tmp = `${path}.raced-tmp-${process.pid}`;
  try {
    writeFileSync(tmp, text, { mode: 0o644 });
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EBUSY' && code !== 'EXDEV' && code !== 'EPERM' && code !== 'EACCES') throw err;
    writeFileSync(path, text);
  }
}
