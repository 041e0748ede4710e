// The one file watcher (resolv.conf, hosts files): stat polling, which
// survives the file being replaced by rename and follows a symlink to what it
// points at now (stat, not lstat). persistent: false: a watch never keeps the
// process alive.
import { watchFile, unwatchFile, type Stats } from 'node:fs';

/** Calls `onChange` when the file may have changed (mtime, size or inode differ); returns the way to stop. */
export function watchPath(path: string, intervalMs: number, onChange: () => void): () => void {
  const listener = (cur: Stats, prev: Stats): void => {
    if (cur.mtimeMs !== prev.mtimeMs || cur.size !== prev.size || cur.ino !== prev.ino) onChange();
  };
  watchFile(path, { interval: intervalMs, persistent: false }, listener);
  return () => unwatchFile(path, listener);
}
