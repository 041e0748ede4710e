// IPv4-mapped sources (issue 22, item 2). raced listens on an IPv6-only
// socket in one network namespace; from a second one, joined by a veth pair,
// hand-built IPv6 packets arrive with the source ::ffff:127.0.0.1 or
// ::ffff:10.9.0.2. Such a source can only be forged on an IPv6-only socket:
// it must be neither loopback nor inside an IPv4 --allow. Private addresses
// (fd22::/64) exist only inside the namespaces this test makes and removes.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { CLI } from './helpers/process.js';
import { makeQuery, sleep } from './helpers/client.js';
import { adoptedDualStack, clientAddress, cidrContains, isLoopback, parseCidr } from '../src/net/address.js';

const has = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const canNamespace = process.getuid?.() === 0 && has('ip') && has('python3') && has('dig');
const SEND = fileURLToPath(new URL('../../test/helpers/send6raw.py', import.meta.url));

const tag = String(process.pid % 100000);
const A = `r22a${tag}`;
const B = `r22b${tag}`;
let child: ChildProcess | null = null;

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: 'pipe' });
}

after(() => {
  if (child && child.exitCode === null) child.kill('SIGKILL');
  for (const ns of [A, B]) spawnSync('ip', ['netns', 'del', ns]);
});

test('unit: a mapped source is unmapped only on a dual-stack socket', () => {
  assert.equal(clientAddress('::ffff:127.0.0.1', true), '127.0.0.1');
  assert.equal(clientAddress('::ffff:127.0.0.1', false), '::ffff:127.0.0.1');
  assert.ok(!isLoopback('::ffff:127.0.0.1'));
  assert.ok(isLoopback('127.0.0.1') && isLoopback('::1'));
  assert.ok(!cidrContains(parseCidr('10.9.0.0/24'), '::ffff:10.9.0.2'));
  assert.ok(cidrContains(parseCidr('10.9.0.0/24'), clientAddress('::ffff:10.9.0.2', true)));
  // Adopted (systemd) sockets: dual-stack only on the IPv6 wildcard or a mapped address, unless the host default is IPv6-only.
  assert.ok(adoptedDualStack('IPv6', '::', false));
  assert.ok(!adoptedDualStack('IPv6', '::', true));
  assert.ok(!adoptedDualStack('IPv6', 'fd22::1', false));
  assert.ok(!adoptedDualStack('IPv4', '0.0.0.0', false));
});

test('forged ::ffff: sources on an IPv6-only socket are neither loopback nor --allow IPv4', { skip: !canNamespace && 'needs root, ip, python3 and dig', timeout: 60_000 }, async () => {
  ip('netns', 'add', A);
  ip('netns', 'add', B);
  ip('link', 'add', `va${tag}`, 'type', 'veth', 'peer', 'name', `vb${tag}`);
  ip('link', 'set', `va${tag}`, 'netns', A);
  ip('link', 'set', `vb${tag}`, 'netns', B);
  for (const [ns, dev, addr] of [
    [A, `va${tag}`, 'fd22::1/64'],
    [B, `vb${tag}`, 'fd22::2/64'],
  ] as const) {
    ip('-n', ns, 'link', 'set', 'lo', 'up');
    ip('-n', ns, 'addr', 'add', addr, 'dev', dev, 'nodad');
    ip('-n', ns, 'link', 'set', dev, 'up');
  }
  const port = 5300;
  // Upstream 127.0.0.1:9 in A: nothing listens, so a forwarded query ends SERVFAIL at once and is logged as a reply.
  child = spawn(
    'ip',
    ['netns', 'exec', A, process.execPath, CLI, '--listen', `[fd22::1]:${port}`, '--server', '127.0.0.1:9', '--no-resolv', '--timeout', '500',
      '--allow', '10.9.0.0/24', '--allow', 'fd22::2/128', '--log-queries', '--log-level', 'info'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let log = '';
  child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  const t0 = Date.now();
  while (!log.includes('listening on')) {
    assert.ok(child.exitCode === null && Date.now() - t0 < 10_000, `raced did not start: ${log}`);
    await sleep(50);
  }
  const forge = (src: string, name: string): void => {
    execFileSync('ip', ['netns', 'exec', B, 'python3', SEND, src, 'fd22::1', String(port), makeQuery(name).toString('hex')]);
  };
  forge('::ffff:127.0.0.1', 'mapped-lo.test');
  forge('::ffff:10.9.0.2', 'mapped-allow.test');
  // The control: a real client in B, allowed by its IPv6 address, is answered; so packets from B do reach raced.
  const dig = spawnSync('ip', ['netns', 'exec', B, 'dig', '@fd22::1', '-p', String(port), 'control.test', '+tries=1', '+time=3'], { encoding: 'utf8' });
  assert.match(dig.stdout, /status: SERVFAIL/, dig.stdout + dig.stderr);
  await sleep(700);
  assert.match(log, /reply control\.test\. is SERVFAIL/);
  for (const name of ['mapped-lo', 'mapped-allow']) {
    assert.doesNotMatch(log, new RegExp(`reply ${name}\\.test\\.`), `${name}: forwarded, but its source is forged\n${log}`);
    assert.match(log, new RegExp(`refused query\\[A\\] ${name}\\.test\\. from ::ffff:`), `${name}: refused and logged as such\n${log}`);
  }
  assert.equal(child.exitCode, null);
});
