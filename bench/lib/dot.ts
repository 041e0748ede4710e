// DNS over TLS and HTTPS for benchmarks and tests: a throw-away CA and a
// server certificate made by openssl, and unbound serving DoT, DoH (when
// asked) and plain DNS on 127.0.0.1 with them.
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import tls from 'node:tls';
import { need, sleep, track, type Proc } from './procs.js';

export interface Pki {
  dir: string;
  /** The CA certificate (PEM file): what --tls-ca is given. */
  caFile: string;
  keyFile: string;
  certFile: string;
  key: string;
  cert: string;
}

/** In `dir`: a CA, and a certificate it signs for `names` (DNS names) and 127.0.0.1. */
export function makePki(dir: string, names: string[] = ['dns.test']): Pki {
  need('openssl', 'openssl');
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
  tlsPort: number;
  plainPort: number;
  /** Forward what is not local to this plain DNS server on 127.0.0.1. */
  forwardPort?: number;
  /** Serve this zone file authoritatively (unbound's auth-zone). */
  authZone?: { name: string; file: string };
  /** EDNS keepalive unbound offers, ms (0 or absent: off), and its own idle timeout in ms. */
  keepaliveMs?: number;
  idleMs?: number;
  verbosity?: number;
  /** Also serve DoH (HTTP/2) on this port, at `httpEndpoint` (default /dns-query), `httpMaxStreams` streams per connection. */
  httpsPort?: number;
  httpEndpoint?: string;
  httpMaxStreams?: number;
  /** SO_REUSEPORT: a second unbound on the same ports takes over when this one stops (a restart without a gap). */
  reusePort?: boolean;
}

export type Unbound = Proc & { tlsPort: number; plainPort: number; httpsPort?: number };

/** unbound serving DoT and plain DNS; a.local.test is always answered (192.0.2.1). Ready once a handshake succeeds. */
export async function startUnbound(pki: Pki, o: UnboundOptions, cpu: string | null = null): Promise<Unbound> {
  need('unbound', 'unbound');
  const keepalive = o.keepaliveMs ?? 0;
  const conf = [
    'server:',
    '  username: ""',
    '  chroot: ""',
    `  directory: "${pki.dir}"`,
    '  pidfile: ""',
    '  use-syslog: no',
    '  logfile: ""',
    `  verbosity: ${o.verbosity ?? 1}`,
    '  num-threads: 1',
    ...(o.reusePort ? ['  so-reuseport: yes'] : []),
    `  interface: 127.0.0.1@${o.tlsPort}`,
    `  interface: 127.0.0.1@${o.plainPort}`,
    `  tls-port: ${o.tlsPort}`,
    ...(o.httpsPort
      ? [`  interface: 127.0.0.1@${o.httpsPort}`, `  https-port: ${o.httpsPort}`, `  http-endpoint: "${o.httpEndpoint ?? '/dns-query'}"`, `  http-max-streams: ${o.httpMaxStreams ?? 100}`]
      : []),
    `  tls-service-key: "${pki.keyFile}"`,
    `  tls-service-pem: "${pki.certFile}"`,
    '  access-control: 127.0.0.0/8 allow',
    '  do-not-query-localhost: no',
    '  module-config: "iterator"',
    '  qname-minimisation: no',
    '  cache-max-ttl: 0',
    // A slow stand-in behind unbound must not look lost: no UDP retry below 1 s.
    '  infra-cache-min-rtt: 1000',
    '  incoming-num-tcp: 100',
    `  edns-tcp-keepalive: ${keepalive > 0 ? 'yes' : 'no'}`,
    ...(keepalive > 0 ? [`  edns-tcp-keepalive-timeout: ${keepalive}`] : []),
    ...(o.idleMs !== undefined ? [`  tcp-idle-timeout: ${o.idleMs}`] : []),
    // unbound answers all of test. NXDOMAIN by default (RFC 6761): let the zones below through.
    '  local-zone: "test." nodefault',
    '  local-zone: "local.test." static',
    '  local-data: "a.local.test. 300 IN A 192.0.2.1"',
    'remote-control:',
    '  control-enable: no',
    ...(o.authZone ? ['auth-zone:', `  name: "${o.authZone.name}"`, `  zonefile: "${o.authZone.file}"`, '  for-downstream: yes', '  for-upstream: no'] : []),
    ...(o.forwardPort ? ['forward-zone:', '  name: "."', `  forward-addr: 127.0.0.1@${o.forwardPort}`] : []),
  ].join('\n');
  const file = join(pki.dir, `unbound-${o.tlsPort}-${Date.now()}.conf`);
  writeFileSync(file, conf + '\n');
  const args = ['-d', '-c', file];
  const [cmd, a] = cpu === null ? ['unbound', args] : ['taskset', ['-c', cpu, 'unbound', ...args]];
  const p = track(`unbound:${o.tlsPort}`, spawn(cmd, a, { stdio: ['ignore', 'pipe', 'pipe'] }), o.plainPort);
  const ca = readFileSync(pki.caFile);
  const t0 = Date.now();
  for (;;) {
    if (p.child.exitCode !== null) throw new Error('unbound exited at start');
    if (Date.now() - t0 > 10_000) {
      await p.stop();
      throw new Error('unbound did not start');
    }
    const ok = await new Promise<boolean>((r) => {
      const s = tls.connect({ host: '127.0.0.1', port: o.tlsPort, ca, servername: 'dns.test' });
      s.once('secureConnect', () => (s.destroy(), r(true)));
      s.once('error', () => (s.destroy(), r(false)));
    });
    if (ok) break;
    await sleep(50);
  }
  return { ...p, tlsPort: o.tlsPort, plainPort: o.plainPort, ...(o.httpsPort ? { httpsPort: o.httpsPort } : {}) };
}
