// The serving process from start to exit: the log and the last-resort guard,
// the --workers primary, the --default-resolver take-over, the control
// socket, the privilege drop, then signals (SIGHUP reloads; SIGTERM/SIGINT
// drain, restore resolv.conf and exit). A start-up error exits with its
// code's status.
import { onSignal, stopRequested } from '../signals.js';
import cluster from 'node:cluster';
import { performance } from 'node:perf_hooks';
import { unlinkSync } from 'node:fs';
import type { Server as NetServer } from 'node:net';
import type { Options } from '../config/options.js';
import { nameserverUpstreams } from '../config/resolv.js';
import { ResolvTakeover } from '../config/takeover.js';
import { Raced } from '../raced.js';
import { ERROR_CODES, RacedError, StartupError, exitStatus } from '../errors.js';
import { Logger, stderrIsJournal } from '../log.js';
import { reportToPrimary, runPrimary, type ControlRequest, type WorkerMessage } from '../workers.js';
import { answersOn } from '../selfcheck.js';
import { installProcessGuard } from '../guard.js';
import { dropPrivileges, plannedUser, unreadable, unwritableDir, type Account } from '../privilege.js';
import { localHandlers, runCommand, startControl } from '../control.js';

export async function run(opts: Options, version: string): Promise<void> {
  // journald stamps each line itself; a file or a terminal needs the time in the line.
  const log = new Logger(opts.logLevel, undefined, { timestamps: !opts.systemd && !stderrIsJournal() });
  let takeover: ResolvTakeover | null = null;
  // Nothing a client or an upstream sends may end raced: see src/guard.ts for what is trusted after.
  installProcessGuard(log, () => {
    if (takeover) logRestore(takeover, log);
  });
  if (opts.workers > 1 && cluster.isPrimary) {
    if (stopRequested()) process.exit(0);
    try {
      const running = runPrimary(opts.workers, log, opts.metricsListen, opts.controlSocket);
      onSignal(() => {}); // the primary's own handlers are installed now
      await running;
      process.exit(0);
    } catch (err) {
      process.stderr.write(`raced: ${(err as Error).message}\n`);
      process.exit(1);
    }
  }
  let raced: Raced;
  let control: NetServer | null = null;
  try {
    // Decided before binding, so a wrong --user fails before anything is touched.
    const become = plannedUser(opts.user, opts.defaultResolver);
    if (opts.defaultResolver) {
      takeover = new ResolvTakeover(RESOLV_CONF);
      // Upstreams come from the host's original file, never from the live one raced rewrites.
      opts.noResolv = true;
      if (opts.servers.length === 0) {
        opts.servers = upstreamsFrom(takeover, log);
        opts.serversFrom = RESOLV_CONF;
      }
      if (opts.enableSearch && opts.searchDomains.length === 0) opts.searchDomains = takeover.original().search;
    }
    raced = new Raced(opts, log);
    await raced.start();
    await raced.startMetrics(version);
    if (opts.controlSocket !== null && cluster.isWorker) {
      // The primary holds the socket and passes each command on.
      const handlers = localHandlers(raced.cache, raced.cacheFile, () => performance.now());
      process.on('message', (m: ControlRequest) => {
        if (m?.type !== 'control') return;
        runCommand(m.line, handlers).then(
          (lines) => process.send!({ type: 'control-reply', seq: m.seq, lines, error: null } satisfies WorkerMessage),
          (err: Error) => process.send!({ type: 'control-reply', seq: m.seq, lines: null, error: err.message } satisfies WorkerMessage),
        );
      });
    } else if (opts.controlSocket !== null) {
      // Bound before the privilege drop, owned by the user raced was started as.
      control = await startControl(opts.controlSocket, localHandlers(raced.cache, raced.cacheFile, () => performance.now()), log).catch(async (err: Error) => {
        await raced.stop(0);
        throw new StartupError(ERROR_CODES.CONTROL, err.message);
      });
      log.info(`control socket on ${opts.controlSocket}`);
    }
    if (takeover) {
      // Only once raced is seen answering does the host's resolv.conf change.
      const ep = await answersOn(raced.bound).catch(() => {
        throw new StartupError(ERROR_CODES.TAKEOVER, `raced does not answer on ${raced.bound.map((b) => b.label).join(', ')}; ${RESOLV_CONF} left as it was`);
      });
      const ns = raced.bound.find((b) => b.port === 53) ?? ep;
      takeover.install(ns.host);
      log.info(`${RESOLV_CONF} now names only raced (${ns.host}); the original (${takeover.describeOriginal()}) is in ${takeover.backup}`);
      if (process.getuid?.() === 0) log.info(`--default-resolver: raced keeps root to restore ${RESOLV_CONF} when it stops`);
    }
    if (become !== null && dropOrStay(become, opts.user !== null, log)) {
      log.info(`running as ${become.name} (uid ${become.uid}, gid ${become.gid})`);
      const later = [...(opts.servers.length === 0 && !opts.noResolv ? [opts.resolvFile] : []), ...opts.hostsFiles];
      for (const f of unreadable(later)) log.warn(`${f} is not readable by ${become.name}: changes to it will not be seen (make it readable, or give --user)`);
      if (opts.cacheFile !== null && unwritableDir(opts.cacheFile)) log.warn(`the directory of --cache-file ${opts.cacheFile} is not writable by ${become.name}: the cache will not be saved (give ${become.name} a directory, e.g. /var/cache/raced, or give --user)`);
    }
    reportToPrimary({ type: 'ready' });
  } catch (err) {
    if (control !== null && opts.controlSocket !== null) {
      // A late failure (take-over, --user) leaves no socket file behind.
      control.close();
      try {
        unlinkSync(opts.controlSocket);
      } catch {
        // the next start replaces it
      }
    }
    if (err instanceof RacedError) {
      // The code closes the line: scripts match it, people read the rest.
      const line = `${err.message} (${err.code})`;
      if (cluster.isWorker) reportToPrimary({ type: 'fatal', message: line });
      else process.stderr.write(`raced: ${line}\n`);
      process.exit(exitStatus(err.code));
    }
    throw err;
  }
  let stopping = false;
  const stop = (sig: string): void => {
    if (stopping) return;
    stopping = true;
    log.info(`${sig}: stopping; letting queries in flight finish`);
    control?.close();
    void raced.stop(Math.min(opts.timeoutMs, 5000)).then(() => {
      // After a privilege drop the socket's directory may not let raced remove it: the next start replaces it.
      if (opts.controlSocket !== null) {
        try {
          unlinkSync(opts.controlSocket);
        } catch {
          // see above
        }
      }
      if (takeover) logRestore(takeover, log);
      process.exit(0);
    });
  };
  onSignal((sig) => {
    if (sig !== 'SIGHUP') return stop(sig);
    log.info('SIGHUP: reloading upstreams');
    raced.reload();
  });
}

const RESOLV_CONF = '/etc/resolv.conf';

/**
 * Drops to `a`; false when raced stays as it is. Root inside a user namespace
 * (a container, `unshare -r`) may be unable to switch to a user the namespace
 * does not map: with the implicit default (no --user) raced then says so and
 * runs on as it is, rather than not at all; an explicit --user is an error.
 */
function dropOrStay(a: Account, explicit: boolean, log: Logger): boolean {
  const gid = process.getegid?.();
  try {
    dropPrivileges(a);
    return true;
  } catch (err) {
    const unchanged = process.geteuid?.() === 0 && process.getegid?.() === gid;
    if (explicit || !unchanged) throw err;
    log.warn(`${(err as Error).message}; running on as uid 0 (give --user to make this an error)`);
    return false;
  }
}

/** Gives resolv.conf back and says truly what happened. */
function logRestore(takeover: ResolvTakeover, log: Logger): void {
  const what = takeover.describeOriginal();
  try {
    const r = takeover.restore();
    if (r === 'restored') log.info(`${RESOLV_CONF} restored (${what})`);
    else if (r === 'kept') log.warn(`${RESOLV_CONF} was rewritten by another program while raced ran: left as it is`);
  } catch (err) {
    log.error(`cannot restore ${RESOLV_CONF} from ${takeover.backup}: ${(err as Error).message}`);
  }
}

/** The host's nameservers as upstreams; raced's own addresses are skipped later, with a warning. */
function upstreamsFrom(takeover: ResolvTakeover, log: Logger): Options['servers'] {
  const out = nameserverUpstreams(takeover.original().nameservers, RESOLV_CONF, (m) => log.warn(m));
  if (out.length === 0) throw new StartupError(ERROR_CODES.TAKEOVER, `no nameserver in ${RESOLV_CONF} to use as upstream; give --server`);
  return out;
}
