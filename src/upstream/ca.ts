// The certificate authorities TLS upstreams are verified against: the
// system's store (what `openssl` and curl on this host trust) plus --tls-ca
// files. Node before 22.15 only knows its own bundled roots, so the system
// bundle is read from where the distributions keep it.
import { readFileSync } from 'node:fs';
import tls from 'node:tls';

/** Debian/Ubuntu/Alpine, Fedora/RHEL, openSUSE, Arch: the first one present is the system store. */
const SYSTEM_BUNDLES = [
  '/etc/ssl/certs/ca-certificates.crt',
  '/etc/pki/tls/certs/ca-bundle.crt',
  '/etc/ssl/ca-bundle.pem',
  '/etc/ca-certificates/extracted/tls-ca-bundle.pem',
];

type GetCa = (type: 'system' | 'bundled') => string[];

function systemCas(): string[] {
  const get = (tls as unknown as { getCACertificates?: GetCa }).getCACertificates;
  if (get) {
    const sys = get('system');
    // A copy: Node hands out a frozen array, and --tls-ca files are added to this list.
    if (sys.length > 0) return [...sys];
  }
  for (const file of SYSTEM_BUNDLES) {
    try {
      return [readFileSync(file, 'utf8')];
    } catch {
      // next candidate
    }
  }
  return [...tls.rootCertificates];
}

/**
 * The TLS context every tls:// upstream verifies with: the system CAs plus
 * every --tls-ca file; an unreadable file is an error naming it.
 */
export function upstreamTlsContext(extraFiles: readonly string[]): tls.SecureContext {
  return tls.createSecureContext({ ca: loadCas(extraFiles), minVersion: 'TLSv1.2' });
}

function loadCas(extraFiles: readonly string[]): (string | Buffer)[] {
  const out: (string | Buffer)[] = systemCas();
  for (const file of extraFiles) {
    let pem: string;
    try {
      pem = readFileSync(file, 'utf8');
    } catch (err) {
      throw new Error(`cannot read --tls-ca ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new Error(`--tls-ca ${file} holds no PEM certificate`);
    out.push(pem);
  }
  return out;
}
