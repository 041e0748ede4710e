// Real DNS clients against raced: dig, kdig, Node's dns.Resolver, and glibc's
// getaddrinfo through a private resolv.conf (the five-nines scenario).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { Resolver } from 'node:dns/promises';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Stub } from './helpers/stub.js';
import { namespaceCommand } from './helpers/process.js';
import { startRaced, type Running } from './helpers/client.js';

// Async: raced runs in this process and must keep serving while a client waits.
const exec = async (cmd: string, args: string[], timeout = 20000): Promise<string> =>
  (await promisify(execFile)(cmd, args, { encoding: 'utf8', timeout })).stdout;

function has(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}

let dead: Stub;
let live: Stub;
let r: Running;
before(async () => {
  dead = await Stub.start({ behaviour: 'drop' });
  live = await Stub.start({ address: '192.0.2.33', bulk: 80 });
  r = await startRaced([dead.label, live.label]);
});
after(async () => {
  await r.close();
  await dead.close();
  await live.close();
});

test('dig over UDP and TCP', { skip: !has('dig') && 'dig not installed (bind9-dnsutils)' }, async () => {
  const out = await exec('dig', ['@127.0.0.1', '-p', String(r.port), 'AAAA', 'dig.example', '+tries=1', '+time=3']);
  assert.match(out, /status: NOERROR/);
  assert.match(out, /dig\.example\.\s+\d+\s+IN\s+AAAA\s+2001:db8::1/);
  const tcp = await exec('dig', ['@127.0.0.1', '-p', String(r.port), '+tcp', 'AAAA', 'dig.example', '+tries=1']);
  assert.match(tcp, /status: NOERROR/);
});

test('dig retries over TCP after TC=1 and gets the whole answer', { skip: !has('dig') && 'dig not installed' }, async () => {
  const out = await exec('dig', ['@127.0.0.1', '-p', String(r.port), '+noedns', 'A', 'big.example', '+tries=1']);
  assert.match(out, /Truncated, retrying in TCP mode/);
  assert.match(out, /ANSWER: 81,/);
});

test('kdig', { skip: !has('kdig') && 'kdig not installed (knot-dnsutils)' }, async () => {
  const out = await exec('kdig', [`@127.0.0.1`, '-p', String(r.port), 'AAAA', 'kdig.example', '+retry=0']);
  assert.match(out, /status: NOERROR/);
  assert.match(out, /2001:db8::1/);
});

test("Node's dns.Resolver", async () => {
  const res = new Resolver({ timeout: 3000, tries: 1 });
  res.setServers([`127.0.0.1:${r.port}`]);
  assert.deepEqual(await res.resolve6('node.example'), ['2001:db8::1']);
  await assert.rejects(res.resolve4('nx.example'), { code: 'ENOTFOUND' });
});

const canNamespace = process.getuid?.() === 0 && has('unshare') && has('getent') && has('ip');
test(
  'glibc getaddrinfo, five-nines: one upstream dead, one dying mid-run, 20 lookups, none stalls',
  { skip: !canNamespace && 'needs root, unshare, ip and getent', timeout: 60000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'raced-5n-'));
    const conf = join(dir, 'resolv.conf');
    writeFileSync(conf, 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n');
    const script = fileURLToPath(new URL('./helpers/five-nines.js', import.meta.url));
    const out = await exec(
      'unshare',
      namespaceCommand(conf, script),
      55000,
    );
    const results = JSON.parse(out.trim().split('\n').pop()!) as { ms: number; addr: string }[];
    assert.equal(results.length, 20);
    for (const [i, x] of results.entries()) {
      assert.ok(x.addr === '192.0.2.91' || x.addr === '192.0.2.92', `lookup ${i}: ${x.addr}`);
      // glibc's own retry would take ≥ 1 s (timeout:1); no lookup may get near it.
      assert.ok(x.ms < 500, `lookup ${i} took ${x.ms} ms`);
    }
  },
);
