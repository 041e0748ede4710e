// --systemd: sockets passed by systemd socket activation (sd_listen_fds(3)):
// LISTEN_PID names this process, LISTEN_FDS counts descriptors from 3 on.
import { fstatSync, readFileSync } from 'node:fs';

export const SD_LISTEN_FDS_START = 3;

/** The descriptors systemd passed, or an error message saying why there are none. */
export function listenFds(env: NodeJS.ProcessEnv = process.env, pid = process.pid): number[] | string {
  if (env.LISTEN_PID === undefined || env.LISTEN_FDS === undefined) return 'no LISTEN_PID/LISTEN_FDS: raced was not started by socket activation';
  if (Number(env.LISTEN_PID) !== pid) return `LISTEN_PID is ${env.LISTEN_PID}, not this process (${pid})`;
  const n = Number(env.LISTEN_FDS);
  if (!Number.isInteger(n) || n < 1) return `LISTEN_FDS=${env.LISTEN_FDS}: no sockets passed`;
  return Array.from({ length: n }, (_, i) => SD_LISTEN_FDS_START + i);
}

/**
 * 4 or 6 for a UDP socket (found by its inode in /proc/net/udp, udp6), null
 * for anything else: Node must know a datagram socket's family before it adopts it.
 */
export function udpFamilyOf(fd: number): 4 | 6 | null {
  const ino = String(fstatSync(fd).ino);
  for (const [file, fam] of [
    ['/proc/net/udp', 4],
    ['/proc/net/udp6', 6],
  ] as const) {
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols[9] === ino) return fam;
    }
  }
  return null;
}
