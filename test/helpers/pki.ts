// A throwaway certificate authority for TLS tests: CAs and the server and client certificates they sign,
// made with the openssl command line (Node has no API that issues X.509 certificates), in a temp dir.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

/** A CA: its certificate (the trust anchor to hand to peers) and the key that signs. */
export interface Ca {
  name: string;
  dir: string;
  certFile: string;
  keyFile: string;
  cert: string;
  key: string;
}

/** A certificate issued by a {@link Ca}, with its private key. */
export interface Issued {
  certFile: string;
  keyFile: string;
  cert: string;
  key: string;
}

export interface IssueOptions {
  cn: string;
  /** DNS subjectAltNames. */
  dns?: string[];
  /** IP subjectAltNames. */
  ip?: string[];
  /** A client certificate (extendedKeyUsage clientAuth) instead of a server one (serverAuth). */
  client?: boolean;
}

const DAYS = '2';

function openssl(args: string[]): void {
  execFileSync('openssl', args, { stdio: 'pipe' });
}

/** A self-signed CA (EC P-256, valid two days) named `name`. */
export function createCa(name: string): Ca {
  const dir = mkdtempSync(join(tmpdir(), 'llmgw-pki-'));
  const certFile = join(dir, 'ca.crt');
  const keyFile = join(dir, 'ca.key');
  openssl([
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', keyFile, '-out', certFile, '-days', DAYS, '-subj', `/CN=${name}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  return { name, dir, certFile, keyFile, cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8') };
}

let issued = 0;

/** A leaf certificate signed by `ca`, written with its key to a fresh temp dir. */
export function issue(ca: Ca, opts: IssueOptions): Issued {
  const dir = mkdtempSync(join(tmpdir(), 'llmgw-pki-'));
  const base = `${opts.cn.replace(/[^A-Za-z0-9.-]/g, '_')}-${++issued}`;
  const certFile = join(dir, `${base}.crt`);
  const keyFile = join(dir, `${base}.key`);
  const csrFile = join(dir, `${base}.csr`);
  const extFile = join(dir, `${base}.ext`);
  const sans = [...(opts.dns ?? []).map((d) => `DNS:${d}`), ...(opts.ip ?? []).map((i) => `IP:${i}`)];
  writeFileSync(extFile, [
    'basicConstraints=critical,CA:FALSE',
    'keyUsage=critical,digitalSignature,keyEncipherment',
    `extendedKeyUsage=${opts.client ? 'clientAuth' : 'serverAuth'}`,
    ...(sans.length > 0 ? [`subjectAltName=${sans.join(',')}`] : []),
  ].join('\n') + '\n');
  openssl([
    'req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', keyFile, '-out', csrFile, '-subj', `/CN=${opts.cn}`,
  ]);
  openssl([
    'x509', '-req', '-in', csrFile, '-CA', ca.certFile, '-CAkey', ca.keyFile, '-out', certFile,
    '-days', DAYS, '-set_serial', `0x${randomBytes(12).toString('hex')}`, '-extfile', extFile,
  ]);
  return { certFile, keyFile, cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8') };
}

/** A server certificate for 127.0.0.1 and localhost. */
export function issueLocalServer(ca: Ca, cn = 'quota-test'): Issued {
  return issue(ca, { cn, dns: ['localhost'], ip: ['127.0.0.1'] });
}

/**
 * Replaces `path` with `content` atomically: write a sibling temp file, rename it over the target, so a
 * reader sees the old or the new content, never half of it (what Kubernetes' atomic writer guarantees
 * per file; a cert and key pair is still two files replaced one after the other here).
 */
export function replaceFile(path: string, content: string): void {
  const tmp = join(dirname(path), `.tmp-${randomBytes(6).toString('hex')}`);
  writeFileSync(tmp, content);
  renameSync(tmp, path);
}
