// --workers N: one raced per core with node:cluster. On Node 20 the cluster
// primary owns each UDP socket and the workers share it (the kernel hands
// each datagram to one of them); from Node 22.12 / 23.1 every worker binds
// its own socket with SO_REUSEPORT and the kernel spreads clients by hash.
// Each worker has its own cache and counters.
import cluster, { type Worker } from 'node:cluster';
import type { Server } from 'node:net';
import type { Logger } from './log.js';
import type { Endpoint } from './net/address.js';
import { startClusterMetrics } from './metrics/cluster.js';
import { exposureWarning } from './metrics/server.js';
import { parseMetrics } from './status.js';
import { FAILING_AFTER_MS } from './upstream/health.js';
import { ControlError, startControl, type ControlHandlers } from './control.js';

/** dgram's `reusePort` exists from Node 22.12 and 23.1. */
export function hasReusePort(version = process.versions.node): boolean {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  return major > 23 || (major === 23 && minor >= 1) || (major === 22 && minor >= 12);
}

export type WorkerMessage =
  | { type: 'ready' }
  | { type: 'fatal'; message: string }
  | { type: 'control-reply'; seq: number; lines: string[] | null; error: string | null };

/** From the primary to a worker: one --control-socket command line. */
export interface ControlRequest {
  type: 'control';
  seq: number;
  line: string;
}

/** In a worker: tell the primary how start-up went. */
export function reportToPrimary(msg: WorkerMessage): void {
  if (cluster.isWorker && process.send) process.send(msg);
}

/**
 * The primary: forks `n` workers, waits until all listen (or one fails, then
 * stops them all and rejects with its message), forwards SIGHUP, and on
 * SIGTERM stops them and resolves. A worker that dies later is replaced.
 */
export function runPrimary(n: number, log: Logger, metricsListen: Endpoint | null, controlSocket: string | null = null): Promise<void> {
  return new Promise((resolve, reject) => {
    if (metricsListen !== null) {
      const exposed = exposureWarning(metricsListen);
      if (exposed) log.warn(exposed);
      // Sums every worker's series (prom-client asks them over the cluster channel).
      startClusterMetrics(metricsListen, async (metrics) => {
        if (ready < n) return `${ready} of ${n} workers ready`;
        // Over the workers, up = some worker finds it up, failing = every worker finds it failing.
        const samples = parseMetrics(await metrics());
        const get = (name: string, u: string): number => samples.find((x) => x.name === name && x.labels.upstream === u)?.value ?? 0;
        const ups = [...new Set(samples.filter((x) => x.name === 'raced_upstream_up').map((x) => x.labels.upstream!))];
        if (ups.some((u) => get('raced_upstream_up', u) > 0 && get('raced_upstream_failing', u) === 0)) return null;
        return ups.every((u) => get('raced_upstream_up', u) === 0) ? 'every upstream is down' : `no upstream gave a valid answer in the last ${FAILING_AFTER_MS / 1000} s`;
      }).then(
        (server) => {
          server.unref();
          log.info(`metrics on http://${metricsListen.label}/metrics (summed over ${n} workers)`);
        },
        (err: Error) => reject(new Error(`cannot serve metrics on ${metricsListen.label}: ${err.message}`)),
      );
    }
    let ready = 0;
    let stopping = false;
    const workers = new Set<Worker>();
    const fork = (): void => {
      const w = cluster.fork();
      workers.add(w);
      w.on('message', (m: WorkerMessage) => {
        if (m.type === 'control-reply') return control.reply(m);
        if (m.type === 'ready' && ++ready === n) log.info(`${n} workers ready`);
        if (m.type === 'fatal') {
          stopping = true;
          for (const other of workers) other.kill('SIGKILL');
          reject(new Error(m.message));
        }
      });
      w.on('exit', (code, signal) => {
        workers.delete(w);
        if (stopping) {
          if (workers.size === 0) resolve();
          return;
        }
        log.warn(`worker ${w.process.pid} exited (${signal ?? code}); starting another`);
        setTimeout(fork, 500).unref();
      });
    };
    const control = new ControlFanOut(workers);
    let controlServer: Server | null = null;
    if (controlSocket !== null) {
      // The primary keeps root and holds the socket; each command goes to every worker.
      startControl(controlSocket, control.handlers(), log).then(
        (server) => {
          controlServer = server;
          server.unref();
          log.info(`control socket on ${controlSocket} (commands go to all ${n} workers)`);
        },
        (err: Error) => {
          stopping = true;
          for (const w of workers) w.kill('SIGKILL');
          reject(err);
        },
      );
    }
    for (let i = 0; i < n; i++) fork();
    const stop = (sig: NodeJS.Signals): void => {
      if (stopping) return;
      stopping = true;
      log.info(`${sig}: stopping ${workers.size} workers`);
      controlServer?.close(); // and the socket file goes with it
      for (const w of workers) w.process.kill('SIGTERM');
      if (workers.size === 0) resolve();
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', () => {
      for (const w of workers) w.process.kill('SIGHUP');
    });
  });
}

/**
 * --control-socket under --workers: a command goes to every worker over the
 * cluster channel and the answers come back together, each worker's lines
 * in turn (a dump lists every worker's entries; a flush says what each
 * dropped). `raced reload` is the primary's SIGHUP, which it forwards.
 */
class ControlFanOut {
  private seq = 0;
  private readonly pending = new Map<number, (m: Extract<WorkerMessage, { type: 'control-reply' }>) => void>();

  constructor(private readonly workers: Set<Worker>) {}

  reply(m: Extract<WorkerMessage, { type: 'control-reply' }>): void {
    this.pending.get(m.seq)?.(m);
  }

  private ask(line: string, prefix: boolean): Promise<string[]> {
    const all = [...this.workers];
    if (all.length === 0) return Promise.reject(new ControlError('no worker is running'));
    return Promise.all(
      all.map(
        (w, i) =>
          new Promise<string[]>((resolve, reject) => {
            const seq = ++this.seq;
            const t = setTimeout(() => {
              this.pending.delete(seq);
              reject(new ControlError(`worker ${w.process.pid} did not answer within 10 s`));
            }, 10_000);
            this.pending.set(seq, (m) => {
              clearTimeout(t);
              this.pending.delete(seq);
              if (m.error !== null) reject(new ControlError(`worker ${w.process.pid}: ${m.error}`));
              else resolve(prefix ? m.lines!.map((l) => `worker ${i + 1} (pid ${w.process.pid}): ${l}`) : m.lines!);
            });
            w.send({ type: 'control', seq, line } satisfies ControlRequest);
          }),
      ),
    ).then((parts) => parts.flat());
  }

  handlers(): ControlHandlers {
    return {
      flush: (name) => this.ask(name === null ? 'cache flush' : `cache flush ${wireToText(name)}`, true),
      dump: () => this.ask('cache dump', false),
      save: () => Promise.reject(new ControlError('no --cache-file to save to (--cache-file works with --workers 1 only)')),
      reload: () => {
        process.kill(process.pid, 'SIGHUP');
        return Promise.resolve(['reloading']);
      },
    };
  }
}

/** Back from the checked wire form to the text a worker parses again. */
function wireToText(wire: Buffer): string {
  const labels: string[] = [];
  for (let off = 0; off < wire.length && wire[off]! > 0; off += wire[off]! + 1) labels.push(wire.toString('latin1', off + 1, off + 1 + wire[off]!));
  return labels.join('.') + '.';
}
