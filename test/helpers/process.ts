// raced as a separate process, the way a user runs it, for the CLI-level tests.
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { after } from 'node:test';
import { fileURLToPath } from 'node:url';

/** raced's entry point, as `raced` (package.json bin) runs it. */
export const CLI = fileURLToPath(new URL('../../src/main.js', import.meta.url));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const children: ChildProcess[] = [];
after(() => {
  for (const c of children) stop(c);
});

/** SIGKILL if still running, and let go of its pipes so a grandchild holding them cannot keep the test file alive. */
function stop(c: ChildProcess): void {
  if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  c.stderr?.destroy();
  c.stdout?.destroy();
}

/** A UDP port free on 127.0.0.1 right now (the bench's helper). */
export { freePort } from '../../bench/lib/procs.js';

/**
 * A TCP server on 127.0.0.1 that accepts and never says a word (a handshake that never comes).
 * close() also destroys what it accepted: a socket nobody reads never sees the peer's FIN, so
 * left open it would keep the test file alive until the runner's timeout.
 */
export async function silentTcpServer(): Promise<{ port: number; close: () => void }> {
  const conns = new Set<net.Socket>();
  const srv = net.createServer((s) => {
    conns.add(s);
    s.on('error', () => {});
    s.on('close', () => conns.delete(s));
  });
  await new Promise<void>((res) => srv.listen(0, '127.0.0.1', res));
  return {
    port: (srv.address() as net.AddressInfo).port,
    close: () => {
      for (const s of conns) s.destroy();
      srv.close();
    },
  };
}

/** A TCP port free on 127.0.0.1 right now. */
export function freeTcpPort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (srv.address() as { port: number }).port;
      srv.close(() => resolve(p));
    });
  });
}

/**
 * Starts raced and resolves once it logs that it listens; killed at the end of the test file.
 * The start limit is generous (--workers 2 took 5-10 s on a loaded 2-core machine): it only
 * turns a raced that never starts into a failure, and a raced that did not start is stopped
 * at once rather than left to hold the test file open.
 */
export async function spawnRaced(args: string[], env: Record<string, string> = {}): Promise<{ child: ChildProcess; log: () => string }> {
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  children.push(child);
  let log = '';
  child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  const t0 = Date.now();
  while (!log.includes('listening on')) {
    if (child.exitCode !== null || Date.now() - t0 > 20_000) {
      stop(child);
      throw new Error(`raced did not start: ${log}`);
    }
    await sleep(20);
  }
  return { child, log: () => log };
}

export function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((r) => (child.exitCode !== null ? r(child.exitCode) : child.once('exit', (code) => r(code))));
}

/**
 * The sh command that sets up a private network namespace (loopback up, and
 * a veth address so getaddrinfo's AI_ADDRCONFIG asks DNS), bind-mounts
 * `conf` on /etc/resolv.conf and runs `script` with node. Use under
 * `unshare --mount --net sh -c`.
 */
export function namespaceCommand(conf: string, script: string): string[] {
  return [
    '--mount',
    '--net',
    'sh',
    '-c',
    'ip link set lo up && ip link add rv0 type veth peer name rv1 && ip addr add 198.18.0.1/24 dev rv0 && ' +
      `ip link set rv0 up && mount --bind "${conf}" /etc/resolv.conf && exec "${process.execPath}" "${script}"`,
  ];
}

/**
 * Like namespaceCommand, but the whole of /etc is `etc` (a scratch copy,
 * bind-mounted) and /run a fresh tmpfs, so a test that writes /etc/resolv.conf
 * and files beside it touches nothing of the host's. `script` gets `args`.
 */
export function privateEtcCommand(etc: string, script: string, args: string[] = []): string[] {
  return [
    '--mount',
    '--net',
    '--propagation',
    'private',
    'sh',
    '-c',
    'ip link set lo up && ip link add rv0 type veth peer name rv1 && ip addr add 198.18.0.1/24 dev rv0 && ' +
      `ip link set rv0 up && mount --bind "${etc}" /etc && mount -t tmpfs tmpfs /run && ` +
      'if [ -n "$RACED_TEST_LINK" ]; then mkdir -p /run/systemd/resolve && cp "$RACED_TEST_LINK" /run/systemd/resolve/stub-resolv.conf; fi && ' +
      `exec "${process.execPath}" "${script}" ${args.map((a) => `"${a}"`).join(' ')}`,
  ];
}
