// DoT for the tests: the bench's throw-away PKI and unbound, in temporary
// directories removed (and unbound processes stopped) when the test file ends.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { makePki as makePkiIn, startUnbound as startUnboundWith, type Pki, type Unbound, type UnboundOptions } from '../../bench/lib/dot.js';
import { freeTcpPort } from './process.js';

export type { Pki, Unbound };

const dirs: string[] = [];
const running: Unbound[] = [];
after(async () => {
  for (const u of running) await u.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

export function makePki(names: string[] = ['dns.test']): Pki {
  const dir = mkdtempSync(join(tmpdir(), 'raced-pki-'));
  dirs.push(dir);
  return makePkiIn(dir, names);
}

/** `doh`: also serve DNS over HTTPS on a free port (`httpsPort`). */
export async function startUnbound(pki: Pki, o: Omit<UnboundOptions, 'tlsPort' | 'plainPort' | 'httpsPort'> & { doh?: boolean; httpsPort?: number } = {}): Promise<Unbound> {
  const { doh, ...rest } = o;
  const httpsPort = o.httpsPort ?? (doh ? await freeTcpPort() : undefined);
  const u = await startUnboundWith(pki, { tlsPort: await freeTcpPort(), plainPort: await freeTcpPort(), ...rest, ...(httpsPort ? { httpsPort } : {}) });
  running.push(u);
  return u;
}
