// DNS over TLS for the tests: a throw-away CA and server certificate made by
// openssl, and unbound serving DoT (and plain DNS) on 127.0.0.1 with them.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { after } from 'node:test';
import { freeTcpPort } from './process.js';

export interface Pki {
  dir: string;
  /** CA certificate file (PEM): what --tls-ca is given. */
  caFile: string;
  keyFile: string;
  certFile: string;
  key: string;
  cert: string;
}

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A CA, and a certificate it signs for `names` (DNS names) and 127.0.0.1. */
export function makePki(names: string[] = ['dns.test']): Pki {
  const dir = mkdtempSync(join(tmpdir(), 'raced-pki-'));
  dirs.push(dir);
  const ssl = (...args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  ssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=raced test CA');
  ssl('req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', `/CN=${names[0]}`);
  writeFileSync(join(dir, 'ext.cnf'), `subjectAltName=${[...names.map((n) => `DNS:${n}`), 'IP:127.0.0.1'].join(',')}\nbasicConstraints=CA:FALSE\n`);
  ssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'ext.cnf');
  const keyFile = join(dir, 'server.key');
  const certFile = join(dir, 'server.pem');
  return { dir, caFile: join(dir, 'ca.pem'), keyFile, certFile, key: readFileSync(keyFile, 'utf8'), cert: readFileSync(certFile, 'utf8') };
}

export interface UnboundOptions {
  /** Forward everything not local to this plain DNS server on 127.0.0.1. */
  forwardPort?: number;
  /** Seconds of EDNS keepalive unbound offers (0: keepalive off), and its own idle timeout in ms. */
  keepaliveMs?: number;
  idleMs?: number;
}

export interface Unbound {
  tlsPort: number;
  plainPort: number;
  child: ChildProcess;
  log(): string;
  stop(): Promise<void>;
}

const running: ChildProcess[] = [];
after(() => {
  for (const c of running) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

/** unbound serving DoT and plain DNS; answers a.local.test itself and forwards the rest when asked to. */
export async function startUnbound(pki: Pki, o: UnboundOptions = {}): Promise<Unbound> {
  const tlsPort = await freeTcpPort();
  const plainPort = await freeTcpPort();
  const keepalive = o.keepaliveMs ?? 0;
  const conf = [
    'server:',
    '  username: ""',
    '  chroot: ""',
    `  directory: "${pki.dir}"`,
    '  pidfile: ""',
    '  use-syslog: no',
    '  logfile: ""',
    `  verbosity: ${process.env.UNBOUND_VERBOSITY ?? 1}`,
    '  num-threads: 1',
    `  interface: 127.0.0.1@${tlsPort}`,
    `  interface: 127.0.0.1@${plainPort}`,
    `  tls-port: ${tlsPort}`,
    `  tls-service-key: "${pki.keyFile}"`,
    `  tls-service-pem: "${pki.certFile}"`,
    '  access-control: 127.0.0.0/8 allow',
    '  do-not-query-localhost: no',
    '  module-config: "iterator"',
    '  qname-minimisation: no',
    '  cache-max-ttl: 0',
    // A slow stand-in behind unbound must not look lost: no UDP retry below 1 s.
    '  infra-cache-min-rtt: 1000',
    `  edns-tcp-keepalive: ${keepalive > 0 ? 'yes' : 'no'}`,
    ...(keepalive > 0 ? [`  edns-tcp-keepalive-timeout: ${keepalive}`] : []),
    ...(o.idleMs !== undefined ? [`  tcp-idle-timeout: ${o.idleMs}`] : []),
    '  local-zone: "local.test." static',
    '  local-data: "a.local.test. 300 IN A 192.0.2.1"',
    'remote-control:',
    '  control-enable: no',
    ...(o.forwardPort ? ['forward-zone:', '  name: "."', `  forward-addr: 127.0.0.1@${o.forwardPort}`] : []),
  ].join('\n');
  const file = join(pki.dir, `unbound-${tlsPort}.conf`);
  writeFileSync(file, conf + '\n');
  const child = spawn('unbound', ['-d', '-c', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  running.push(child);
  let log = '';
  child.stdout!.on('data', (d: Buffer) => (log += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  const t0 = Date.now();
  // Ready when a TLS handshake with it succeeds.
  for (;;) {
    if (child.exitCode !== null) throw new Error(`unbound exited: ${log}`);
    if (Date.now() - t0 > 10_000) throw new Error(`unbound did not start: ${log}`);
    const ok = await new Promise<boolean>((r) => {
      const s = tls.connect({ host: '127.0.0.1', port: tlsPort, ca: readFileSync(pki.caFile), servername: 'dns.test' });
      s.once('secureConnect', () => (s.destroy(), r(true)));
      s.once('error', () => (s.destroy(), r(false)));
    });
    if (ok) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    tlsPort,
    plainPort,
    child,
    log: () => log,
    stop: () =>
      new Promise<void>((r) => {
        if (child.exitCode !== null || child.signalCode !== null) return r();
        child.once('exit', () => r());
        child.kill('SIGTERM');
      }),
  };
}
