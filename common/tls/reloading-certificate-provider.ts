// A grpc-js certificate provider over PEM files that are re-read when they change, publishing a new
// identity (cert + key) or CA only when it is complete and valid, so a half-rotated set is never served.
import { createHash, createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createSecureContext } from 'node:tls';
import type { experimental } from '@grpc/grpc-js';

type IdentityUpdate = experimental.IdentityCertificateUpdate;
type CaUpdate = experimental.CaCertificateUpdate;

/** How often the files are re-read, in milliseconds. */
export const DEFAULT_REFRESH_MS = 5000;

export interface ReloadingCertificateProviderOptions {
  /** PEM certificate (chain, leaf first) presented to peers; needs `keyFile`. */
  certFile?: string | undefined;
  /** PEM private key of `certFile`'s leaf; needs `certFile`. */
  keyFile?: string | undefined;
  /** PEM bundle of one or more CA certificates that peers are verified against. */
  caFile?: string | undefined;
  /** Poll period in milliseconds (default {@link DEFAULT_REFRESH_MS}); files are read only while grpc-js listens. */
  refreshMs?: number | undefined;
  /**
   * Told about every changed set: 'ok' when it was published, 'failed' when it was refused and the last good
   * set stays (reported once per distinct content or read error, not on every poll).
   */
  onReload?: ((result: 'ok' | 'failed', detail: string) => void) | undefined;
}

/** A TLS option or file that cannot be used at startup; `file` names the file at fault when there is one. */
export class TlsConfigError extends Error {
  readonly code = 'LLMGW_TLS_CONFIG';
  constructor(message: string, readonly file?: string) {
    super(message);
    this.name = 'TlsConfigError';
  }
}

/** One published thing (the identity pair or the CA bundle) and what was last refused for it. */
interface Slot<T> {
  /** What is kept when a change is refused, for messages. */
  label: 'certificate' | 'CA';
  files: string[];
  validate(contents: Buffer[]): { update: T; detail: string };
  published: Buffer[];
  latest: T;
  /** Digest of the refused content or the read error, so an unchanged bad set is not re-reported. */
  refused: string | undefined;
  listeners: Set<(update: T) => void>;
}

/**
 * Implements grpc-js' `experimental.CertificateProvider`. Unlike the stock `FileWatcherCertificateProvider`
 * it never publishes `null` (which makes a grpc-js server drop every new connection) and never publishes a
 * certificate with a key that does not match it (a poll between the replacement of tls.crt and of tls.key).
 * Reads and validates everything in the constructor, throwing {@link TlsConfigError} naming the file.
 */
export class ReloadingCertificateProvider implements experimental.CertificateProvider {
  private readonly refreshMs: number;
  private readonly onReload: ReloadingCertificateProviderOptions['onReload'];
  private readonly identity: Slot<IdentityUpdate> | undefined;
  private readonly ca: Slot<CaUpdate> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private reading: Promise<void> | undefined;
  /** Reads are numbered so that an older read finishing late never undoes a newer one. */
  private readsStarted = 0;
  private newestApplied = 0;
  private lastReadMs = 0;
  private closed = false;

  constructor(opts: ReloadingCertificateProviderOptions) {
    this.refreshMs = opts.refreshMs ?? DEFAULT_REFRESH_MS;
    if (!(this.refreshMs > 0) || !Number.isFinite(this.refreshMs)) throw new TlsConfigError(`refreshMs must be a positive number of milliseconds, got ${opts.refreshMs}`);
    this.onReload = opts.onReload;
    const { certFile, keyFile, caFile } = opts;
    if ((certFile === undefined) !== (keyFile === undefined)) {
      throw new TlsConfigError(`a certificate file and a key file go together: got ${certFile === undefined ? `only the key file ${keyFile}` : `only the certificate file ${certFile}`}`, certFile ?? keyFile);
    }
    if (certFile === undefined && caFile === undefined) throw new TlsConfigError('a certificate provider needs a certificate and key, or a CA file');
    if (certFile !== undefined && keyFile !== undefined) {
      this.identity = slot('certificate', [certFile, keyFile], ([cert, key]) => validateIdentity(certFile, keyFile, cert!, key!));
    }
    if (caFile !== undefined) this.ca = slot('CA', [caFile], ([ca]) => validateCa(caFile, ca!));
    this.lastReadMs = Date.now();
  }

  addIdentityCertificateListener(listener: (update: IdentityUpdate | null) => void): void {
    this.addListener(this.identity, listener);
  }

  removeIdentityCertificateListener(listener: (update: IdentityUpdate | null) => void): void {
    this.identity?.listeners.delete(listener);
    this.stopIfIdle();
  }

  addCaCertificateListener(listener: (update: CaUpdate | null) => void): void {
    this.addListener(this.ca, listener);
  }

  removeCaCertificateListener(listener: (update: CaUpdate | null) => void): void {
    this.ca?.listeners.delete(listener);
    this.stopIfIdle();
  }

  /** Re-reads the files now (the timer does this every refreshMs); resolves once any change is published or refused. */
  refresh(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.reading ??= this.readAndPublish().finally(() => {
      this.reading = undefined;
    });
    return this.reading;
  }

  /** Stops polling for good; listeners keep the last good set and hear nothing more. */
  close(): void {
    this.closed = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    this.identity?.listeners.clear();
    this.ca?.listeners.clear();
  }

  private addListener<T>(s: Slot<T> | undefined, listener: (update: T) => void): void {
    // Asked for something this provider has no file for (no identity on a CA-only provider): stay silent.
    if (s === undefined || this.closed) return;
    s.listeners.add(listener);
    this.startIfListened();
    // Delivered on the next tick, as the stock provider does: grpc-js' server registers its watcher only
    // after adding its provider listeners, so a synchronous call would be lost and TLS never enabled.
    process.nextTick(() => {
      if (s.listeners.has(listener)) listener(s.latest);
    });
  }

  private startIfListened(): void {
    if (this.timer !== undefined || this.closed) return;
    this.timer = setInterval(() => this.poll(), this.refreshMs);
    this.timer.unref();
    // Idle for a while (no channel or server was using us): what we hold may be stale. Read synchronously so
    // the update delivered on the next tick is current: a channel connects with whatever it holds then.
    if (Date.now() - this.lastReadMs >= this.refreshMs) this.publish(++this.readsStarted, this.slots().map((s) => s.files.map(readSync)));
  }

  private stopIfIdle(): void {
    if ((this.identity?.listeners.size ?? 0) + (this.ca?.listeners.size ?? 0) > 0 || this.timer === undefined) return;
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private poll(): void {
    this.refresh().catch((err: unknown) => this.report('failed', `certificate reload: ${message(err)}`));
  }

  private slots(): Slot<unknown>[] {
    return [this.identity, this.ca].filter((s) => s !== undefined) as Slot<unknown>[];
  }

  private async readAndPublish(): Promise<void> {
    const seq = ++this.readsStarted;
    this.publish(seq, await Promise.all(this.slots().map((s) => Promise.all(s.files.map(readAsync)))));
  }

  /** `reads[i]` holds the contents (or read error) of the files of `slots()[i]`, read by read number `seq`. */
  private publish(seq: number, reads: (Buffer | TlsConfigError)[][]): void {
    if (this.closed || seq < this.newestApplied) return;
    this.newestApplied = seq;
    this.lastReadMs = Date.now();
    this.slots().forEach((s, i) => this.consider(s, reads[i]!));
  }

  private consider<T>(s: Slot<T>, read: (Buffer | TlsConfigError)[]): void {
    const readError = read.find((r): r is TlsConfigError => r instanceof TlsConfigError);
    if (readError !== undefined) return this.refuse(s, `read:${readError.message}`, readError.message);
    const contents = read as Buffer[];
    if (contents.every((c, i) => c.equals(s.published[i]!))) {
      s.refused = undefined;
      return;
    }
    const digest = digestOf(contents);
    if (digest === s.refused) return;
    let checked: { update: T; detail: string };
    try {
      checked = s.validate(contents);
    } catch (err) {
      return this.refuse(s, digest, `${message(err)}; keeping the previous ${s.label}`);
    }
    s.published = contents;
    s.latest = checked.update;
    s.refused = undefined;
    this.report('ok', checked.detail);
    for (const listener of s.listeners) listener(checked.update);
  }

  private refuse<T>(s: Slot<T>, key: string, detail: string): void {
    if (s.refused === key) return;
    s.refused = key;
    this.report('failed', detail);
  }

  private report(result: 'ok' | 'failed', detail: string): void {
    try {
      this.onReload?.(result, detail);
    } catch {
      // A throwing observer must not stop certificate reloads.
    }
  }
}

function readAsync(file: string): Promise<Buffer | TlsConfigError> {
  return readFile(file).then((b) => b, (err: unknown) => new TlsConfigError(`${file}: cannot be read (${message(err)})`, file));
}

function readSync(file: string): Buffer | TlsConfigError {
  try {
    return readFileSync(file);
  } catch (err) {
    return new TlsConfigError(`${file}: cannot be read (${message(err)})`, file);
  }
}

/** Reads and validates a set synchronously: a failure here is a startup error. */
function slot<T>(label: Slot<T>['label'], files: string[], validate: (contents: Buffer[]) => { update: T; detail: string }): Slot<T> {
  const contents = files.map((f) => {
    const read = readSync(f);
    if (read instanceof TlsConfigError) throw read;
    return read;
  });
  return { label, files, validate, published: contents, latest: validate(contents).update, refused: undefined, listeners: new Set() };
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

function parseCertificates(pem: Buffer, file: string): X509Certificate[] {
  const blocks = pem.toString('utf8').match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) throw new TlsConfigError(`${file}: holds no PEM certificate`, file);
  return blocks.map((block, i) => {
    try {
      return new X509Certificate(block);
    } catch (err) {
      throw new TlsConfigError(`${file}: certificate ${i + 1} does not parse (${message(err)})`, file);
    }
  });
}

function validateIdentity(certFile: string, keyFile: string, cert: Buffer, key: Buffer): { update: IdentityUpdate; detail: string } {
  const leaf = parseCertificates(cert, certFile)[0]!;
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(key);
  } catch (err) {
    throw new TlsConfigError(`${keyFile}: private key does not parse (${message(err)})`, keyFile);
  }
  if (!leaf.checkPrivateKey(privateKey)) throw new TlsConfigError(`${keyFile}: private key does not match the certificate in ${certFile}`, keyFile);
  // What grpc-js will do with it; a set that fails here would make a server refuse every new connection.
  try {
    createSecureContext({ cert, key });
  } catch (err) {
    throw new TlsConfigError(`${certFile}: refused by TLS with ${keyFile} (${message(err)})`, certFile);
  }
  return {
    update: { certificate: cert, privateKey: key },
    detail: `${certFile}: certificate ${leaf.subject.replace(/\n/g, ', ')} serial ${leaf.serialNumber}, valid until ${leaf.validTo}`,
  };
}

function validateCa(caFile: string, ca: Buffer): { update: CaUpdate; detail: string } {
  const certs = parseCertificates(ca, caFile);
  try {
    createSecureContext({ ca });
  } catch (err) {
    throw new TlsConfigError(`${caFile}: refused by TLS (${message(err)})`, caFile);
  }
  return { update: { caCertificate: ca }, detail: `${caFile}: CA bundle of ${certs.length} (${certs.map((c) => c.subject.replace(/\n/g, ', ')).join('; ')})` };
}

function digestOf(contents: Buffer[]): string {
  const h = createHash('sha256');
  for (const c of contents) h.update(`${c.length}:`).update(c);
  return h.digest('hex');
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A client certificate and its key go together: throws TlsConfigError naming the one given alone. */
export function checkClientPair(certFile: string | undefined, keyFile: string | undefined): void {
  if ((certFile === undefined) === (keyFile === undefined)) return;
  throw new TlsConfigError(
    certFile === undefined ? `a client key file (${keyFile}) needs its certificate file too` : `a client certificate file (${certFile}) needs its key file too`,
    certFile ?? keyFile,
  );
}

/**
 * Reads and validates a channel's TLS files as the providers would, without keeping anything: for a
 * client built elsewhere (a worker thread) whose bad files must still stop the start with their name.
 */
export function checkTlsFiles(files: { caFile: string; certFile?: string | undefined; keyFile?: string | undefined }): void {
  checkClientPair(files.certFile, files.keyFile);
  new ReloadingCertificateProvider({ caFile: files.caFile }).close();
  if (files.certFile !== undefined) new ReloadingCertificateProvider({ certFile: files.certFile, keyFile: files.keyFile }).close();
}
