// The seeds' five-nines scenario, run inside a private network and mount
// namespace (see clients.test.ts): /etc/resolv.conf names only raced on
// 127.0.0.1:53; of three upstreams one is dead from the start and one dies
// mid-run; glibc's getaddrinfo (getent ahostsv4) does 20 lookups.
// Prints one JSON line with the time of each lookup.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Stub } from './stub.js';
import { startRaced } from './client.js';
import { parseEndpoint } from '../../src/net/address.js';

const run = promisify(execFile);

const dead = await Stub.start({ behaviour: 'drop' });
const dying = await Stub.start({ address: '192.0.2.91' });
const live = await Stub.start({ address: '192.0.2.92', delayMs: 2 });
const r = await startRaced([dead.label, dying.label, live.label], {
  listen: [parseEndpoint('127.0.0.1:53', 53)],
  timeoutMs: 2000,
});
const results: { ms: number; addr: string }[] = [];
for (let i = 0; i < 20; i++) {
  if (i === 10) await dying.close();
  const t0 = Date.now();
  let addr = '';
  try {
    const { stdout } = await run('getent', ['ahostsv4', `host${i}.five-nines.test`], { timeout: 10000 });
    addr = stdout.split(/\s+/)[0] ?? '';
  } catch {
    addr = 'failed';
  }
  results.push({ ms: Date.now() - t0, addr });
}
process.stdout.write(JSON.stringify(results) + '\n');
await r.close();
await dead.close();
await live.close();
process.exit(0);
