// --default-resolver (go-dnsmasq's name): raced becomes the host's only
// nameserver, and gives resolv.conf back when it stops. Every step leaves a
// working resolv.conf: the original is saved before anything is written —
// a symlink (systemd-resolved, resolvconf) as the same symlink, a file with
// its mode and owner — and raced's own file (0644 whatever the umask)
// replaces the name by temp file + rename, so a link's target is never
// touched. Where resolv.conf is a bind mount (containers) and rename fails,
// the file is written in place. A start after a crash finds raced's own file
// and takes the original from the backup.
import { chmodSync, chownSync, lstatSync, readFileSync, readlinkSync, renameSync, rmSync, symlinkSync, writeFileSync, type Stats } from 'node:fs';
import { parseResolvConf, type ResolvConf } from './resolv.js';

export const MARKER = '# Written by raced --default-resolver';

/** What restore() did: put the original back, kept a file another program wrote meanwhile, or nothing to do. */
export type RestoreResult = 'restored' | 'kept' | 'nothing';

const IN_PLACE = new Set(['EBUSY', 'EXDEV', 'EPERM', 'EACCES']);

function lstatOrNull(path: string): Stats | null {
  try {
    return lstatSync(path);
  } catch {
    return null;
  }
}

export class ResolvTakeover {
  readonly backup: string;
  private installed = false;

  constructor(
    readonly path: string,
    backup?: string,
  ) {
    this.backup = backup ?? `${path}.raced-orig`;
  }

  /** resolv.conf is the file raced wrote (a regular file with raced's first line). */
  private ours(): boolean {
    const st = lstatOrNull(this.path);
    if (st === null || !st.isFile()) return false;
    try {
      return readFileSync(this.path, 'utf8').startsWith(MARKER);
    } catch {
      return false;
    }
  }

  /** The host's own resolv.conf text: the backup if the current file is raced's (a crash left it). */
  originalText(): string {
    if (this.ours() && lstatOrNull(this.backup) !== null) return readFileSync(this.backup, 'utf8');
    return readFileSync(this.path, 'utf8');
  }

  original(): ResolvConf {
    return parseResolvConf(this.originalText());
  }

  /** Saves the original, then points resolv.conf at `nameserver` keeping search and options. */
  install(nameserver: string): void {
    const conf = parseResolvConf(this.originalText());
    if (!this.ours()) this.saveOriginal();
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

  /** The backup, made whole under a temporary name first: a symlink as the same symlink, a file with its mode and owner. */
  private saveOriginal(): void {
    const st = lstatSync(this.path);
    const tmp = `${this.backup}.raced-tmp-${process.pid}`;
    rmSync(tmp, { force: true });
    try {
      if (st.isSymbolicLink()) {
        symlinkSync(readlinkSync(this.path), tmp);
      } else {
        writeFileSync(tmp, readFileSync(this.path));
        chmodSync(tmp, st.mode & 0o7777);
        chownSync(tmp, st.uid, st.gid);
      }
      renameSync(tmp, this.backup);
    } catch (err) {
      rmSync(tmp, { force: true });
      throw err;
    }
  }

  /** Puts the original back (only if raced installed its own). Safe to call twice. */
  restore(): RestoreResult {
    if (!this.installed) return 'nothing';
    this.installed = false;
    const saved = lstatOrNull(this.backup);
    if (saved === null) return 'nothing';
    // Someone else rewrote resolv.conf meanwhile (DHCP, an admin, a resolver manager): theirs stays.
    if (!this.ours()) {
      rmSync(this.backup, { force: true });
      return 'kept';
    }
    try {
      // The backup already has the original's form, mode and owner: one rename puts it all back.
      renameSync(this.backup, this.path);
      return 'restored';
    } catch (err) {
      if (!IN_PLACE.has((err as NodeJS.ErrnoException).code ?? '')) throw err;
    }
    // A bind mount cannot be replaced: its content, mode and owner are.
    const text = readFileSync(this.backup);
    const st = saved.isSymbolicLink() ? lstatSync(this.path) : saved;
    writeFileSync(this.path, text);
    chmodSync(this.path, st.mode & 0o7777);
    chownSync(this.path, st.uid, st.gid);
    rmSync(this.backup, { force: true });
    return 'restored';
  }

  /** For the log: what the original is (a symlink and its target, or a file). */
  describeOriginal(): string {
    const st = lstatOrNull(this.backup);
    return st?.isSymbolicLink() ? `symlink to ${readlinkSync(this.backup)}` : 'file';
  }
}

/**
 * raced's file, mode 0644 whatever the umask, by temp + rename (a symlink is
 * replaced, not followed); where rename cannot replace the file (a bind mount: EBUSY, EXDEV), in place.
 */
export function writeAtomic(path: string, text: string): void {
  const tmp = `${path}.raced-tmp-${process.pid}`;
  try {
    writeFileSync(tmp, text, { mode: 0o644 });
    chmodSync(tmp, 0o644);
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    if (!IN_PLACE.has((err as NodeJS.ErrnoException).code ?? '')) throw err;
    writeFileSync(path, text);
    chmodSync(path, 0o644);
  }
}
