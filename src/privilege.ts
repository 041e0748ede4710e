// Least privilege (--user, dnsmasq's name). Started as root, raced binds its
// sockets (port 53 needs it) and then becomes an unprivileged user for the
// rest of its life: supplementary groups, group, then user, so nothing of
// root's is left (setuid from root to another uid clears every capability).
// What raced still needs after that it has already opened: the listening
// sockets, the metrics socket, the TLS CA files. Upstream sockets use
// ephemeral ports. Hosts files and the resolv-file are re-read on change as
// that user: they must be readable by it (they are world-readable as usual).
import { execFileSync } from 'node:child_process';
import { ERROR_CODES, RacedError } from './errors.js';
import { accessSync, constants, readFileSync } from 'node:fs';
import { dirname } from 'node:path';

export class PrivilegeError extends RacedError {
  override name = 'PrivilegeError';
  constructor(message: string) {
    super(ERROR_CODES.USER, message);
  }
}

export interface Account {
  name: string;
  uid: number;
  gid: number;
}

/** dnsmasq's default, and what raced becomes when started as root without --user. */
export const DEFAULT_USER = 'nobody';

/** A passwd line for `name` (or, when `name` is a number, for that uid). */
function fromPasswdLine(line: string, name: string): Account | null {
  const f = line.split(':');
  if (f.length < 4 || (f[0] !== name && f[2] !== name)) return null;
  const uid = Number(f[2]);
  const gid = Number(f[3]);
  if (f[2] === '' || f[3] === '' || !Number.isInteger(uid) || !Number.isInteger(gid)) return null;
  return { name: f[0]!, uid, gid };
}

/** The account's uid and primary gid: NSS first (getent), then /etc/passwd. A number is looked up as a uid. */
export function lookupUser(name: string): Account {
  if (!/^[a-z0-9_][a-z0-9_.-]*\$?$/i.test(name) || name.length > 64) throw new PrivilegeError(`--user: not a user name: '${name.slice(0, 64)}'`);
  try {
    const a = fromPasswdLine(execFileSync('getent', ['passwd', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim(), name);
    if (a) return a;
  } catch {
    // no getent, or no such user in NSS: try the file
  }
  try {
    for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
      const a = fromPasswdLine(line, name);
      if (a) return a;
    }
  } catch {
    // unreadable: reported below
  }
  throw new PrivilegeError(`--user: no such user '${name}'`);
}

/**
 * Who raced should become, decided before anything is bound so a wrong name
 * fails at once: null to stay as it is. Not root: --user is an error unless
 * it names the user raced already runs as (a unit with User=, a container).
 * --default-resolver keeps root, as it must write /etc/resolv.conf back when
 * it stops (see README "Security"); an explicit --user with it is an error.
 */
export function plannedUser(user: string | null, defaultResolver: boolean, uid = process.getuid?.() ?? -1): Account | null {
  if (uid !== 0) {
    if (user === null) return null;
    const a = lookupUser(user);
    if (a.uid === uid) return null;
    throw new PrivilegeError(`--user ${user}: raced is not running as root, so it cannot become another user`);
  }
  if (defaultResolver) {
    if (user !== null) throw new PrivilegeError('--user and --default-resolver cannot go together: restoring /etc/resolv.conf on exit needs root');
    return null;
  }
  const a = lookupUser(user ?? DEFAULT_USER);
  if (a.uid === 0) throw new PrivilegeError(`--user ${a.name}: that is root; name an unprivileged user`);
  return a;
}

/** Becomes `a` for good: groups, gid, uid, then checks that root cannot be taken back. */
export function dropPrivileges(a: Account): void {
  try {
    process.setgroups!([a.gid]);
    process.setgid!(a.gid);
    process.setuid!(a.uid);
  } catch (err) {
    throw new PrivilegeError(`--user ${a.name}: cannot switch to uid ${a.uid}, gid ${a.gid}: ${(err as Error).message}`);
  }
  let regained = false;
  try {
    process.setuid!(0);
    regained = true;
  } catch {
    // as it should be
  }
  if (regained || process.geteuid!() !== a.uid || process.getegid!() !== a.gid) {
    throw new PrivilegeError(`--user ${a.name}: the switch did not hold (uid ${process.geteuid!()}, gid ${process.getegid!()})`);
  }
}

/** Files raced re-reads later (resolv-file, hosts files) that the new user cannot read: said at start, not at the first reload. */
export function unreadable(paths: readonly string[]): string[] {
  return paths.filter((p) => {
    try {
      accessSync(p, constants.R_OK);
      return false;
    } catch {
      return true;
    }
  });
}

/** --cache-file is written (temporary file, then rename) by the user raced runs as: its directory must be writable by it. */
export function unwritableDir(file: string): boolean {
  try {
    accessSync(dirname(file), constants.W_OK | constants.X_OK);
    return false;
  } catch {
    return true;
  }
}
