// --conf-file: dnsmasq's key=value format, precedence, and errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfFile, ConfFileError } from '../src/config/conf-file.js';
import { Stub } from './helpers/stub.js';
import { udpQuery, firstData } from './helpers/client.js';
import { CLI, freePort, spawnRaced } from './helpers/process.js';

const dir = mkdtempSync(join(tmpdir(), 'raced-conf-'));
test('parsing: flags, values, repeated keys; unsupported keys and bad shapes name their line', () => {
  const v = parseConfFile('# c\nserver=192.0.2.1\nserver=/corp.example/192.0.2.2\nall-servers\nno-negcache\ncache-size=0\n', 'x.conf');
  assert.deepEqual(v.get('server'), ['192.0.2.1', '/corp.example/192.0.2.2']);
  assert.equal(v.get('allServers'), true);
  assert.equal(v.get('negcache'), false);
  assert.equal(v.get('cacheSize'), '0');
  assert.throws(() => parseConfFile('cache-size=1\ndhcp-range=1,2\n', 'x.conf'), (e: Error) => e instanceof ConfFileError && /x\.conf:2: unsupported option 'dhcp-range'/.test(e.message));
  assert.throws(() => parseConfFile('all-servers=yes\n', 'x.conf'), /x\.conf:1: 'all-servers' takes no value/);
  assert.throws(() => parseConfFile('cache-size=\n', 'x.conf'), /x\.conf:1: 'cache-size' needs a value/);
});

test('a dnsmasq.conf drives raced: servers, listen address and port, address=, local domains', async () => {
  const up = await Stub.start({ address: '192.0.2.40' });
  const port = await freePort();
  const conf = join(dir, 'dnsmasq.conf');
  writeFileSync(
    conf,
    [
      '# a dnsmasq.conf',
      'no-resolv',
      `server=127.0.0.1#${up.port}`,
      'all-servers',
      'cache-size=0',
      'listen-address=127.0.0.1',
      `port=${port}`,
      'address=/blocked.example/0.0.0.0',
      'address=/nowhere.example/',
      'log-queries',
      '',
    ].join('\n'),
  );
  try {
    const { child, log } = await spawnRaced(['--conf-file', conf]);
    assert.equal(firstData((await udpQuery(port, 'www.example')).packet), '192.0.2.40');
    assert.equal(firstData((await udpQuery(port, 'ads.blocked.example')).packet), '0.0.0.0');
    assert.equal(firstData((await udpQuery(port, 'blocked.example')).packet), '0.0.0.0');
    assert.equal((await udpQuery(port, 'x.nowhere.example')).packet.rcode, 'NXDOMAIN');
    assert.match(log(), /cache 0/);
    assert.match(log(), /query\[A\] www\.example\./);
    assert.equal(up.count(), 1, 'only www.example went upstream');
    child.kill('SIGTERM');
  } finally {
    await up.close();
  }
});

test('precedence: flags, then environment, then the file, then defaults', async () => {
  const up = await Stub.start();
  const port = await freePort();
  const conf = join(dir, 'prec.conf');
  writeFileSync(conf, `no-resolv\nserver=127.0.0.1#${up.port}\ncache-size=111\nmin-cache-ttl=5\nlisten-address=127.0.0.1\nport=${port}\n`);
  try {
    const a = await spawnRaced(['--conf-file', conf]);
    assert.match(a.log(), /cache 111/);
    a.child.kill('SIGTERM');
    await new Promise((r) => a.child.once('exit', r));
    const b = await spawnRaced(['--conf-file', conf], { RACED_CACHE_SIZE: '222' });
    assert.match(b.log(), /cache 222/);
    b.child.kill('SIGTERM');
    await new Promise((r) => b.child.once('exit', r));
    const c = await spawnRaced(['--conf-file', conf, '--cache-size', '333'], { RACED_CACHE_SIZE: '222' });
    assert.match(c.log(), /cache 333/);
    c.child.kill('SIGTERM');
  } finally {
    await up.close();
  }
});

test('config-file errors: exit 2 with the file, the line and the key', () => {
  const bad = join(dir, 'bad.conf');
  writeFileSync(bad, 'server=192.0.2.1\n\ninterface=eth0\n');
  let r = spawnSync(process.execPath, [CLI, '--conf-file', bad], { encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /bad\.conf:3: unsupported option 'interface'/);
  writeFileSync(bad, 'cache-size=-4\n');
  r = spawnSync(process.execPath, [CLI, '--conf-file', bad], { encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /bad\.conf:1: cache-size=-4: must be between/);
  r = spawnSync(process.execPath, [CLI, '--conf-file', join(dir, 'missing.conf')], { encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /cannot read --conf-file .*missing\.conf: ENOENT/);
});
