// ReloadingCertificateProvider: what it publishes to grpc-js listeners when PEM files change, break, or
// rotate half-way, and when it reads them at all.
import { copyFileSync, mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ReloadingCertificateProvider, TlsConfigError } from '../../../../common/tls/reloading-certificate-provider.js';
import { createCa, issueLocalServer, replaceFile, type Ca, type Issued } from '../../../helpers/pki.js';

let caA: Ca;
let caB: Ca;
let pairA: Issued;
let pairB: Issued;

beforeAll(() => {
  caA = createCa('unit-ca-a');
  caB = createCa('unit-ca-b');
  pairA = issueLocalServer(caA, 'server-a');
  pairB = issueLocalServer(caB, 'server-b');
});

const providers: ReloadingCertificateProvider[] = [];
afterEach(() => {
  for (const p of providers.splice(0)) p.close();
});

/** tls.crt, tls.key and ca.crt holding pair A and CA A, in a fresh directory. */
function mounted(): { dir: string; certFile: string; keyFile: string; caFile: string } {
  const dir = mkdtempSync(join(tmpdir(), 'llmgw-provider-'));
  const files = { dir, certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key'), caFile: join(dir, 'ca.crt') };
  writeFileSync(files.certFile, pairA.cert);
  writeFileSync(files.keyFile, pairA.key);
  writeFileSync(files.caFile, caA.cert);
  return files;
}

interface Observed {
  provider: ReloadingCertificateProvider;
  certs: string[];
  keys: string[];
  cas: string[];
  nulls: number;
  reloads: { result: 'ok' | 'failed'; detail: string }[];
  listen(): void;
  unlisten(): void;
}

function observe(files: { certFile?: string; keyFile?: string; caFile?: string }, refreshMs = 20): Observed {
  const o: Observed = {
    certs: [],
    keys: [],
    cas: [],
    nulls: 0,
    reloads: [],
    provider: new ReloadingCertificateProvider({ ...files, refreshMs, onReload: (result, detail) => o.reloads.push({ result, detail }) }),
    listen: () => {
      o.provider.addIdentityCertificateListener(onIdentity);
      o.provider.addCaCertificateListener(onCa);
    },
    unlisten: () => {
      o.provider.removeIdentityCertificateListener(onIdentity);
      o.provider.removeCaCertificateListener(onCa);
    },
  };
  const onIdentity = (u: { certificate: Buffer; privateKey: Buffer } | null): void => {
    if (u === null) o.nulls++;
    else {
      o.certs.push(u.certificate.toString());
      o.keys.push(u.privateKey.toString());
    }
  };
  const onCa = (u: { caCertificate: Buffer } | null): void => {
    if (u === null) o.nulls++;
    else o.cas.push(u.caCertificate.toString());
  };
  providers.push(o.provider);
  return o;
}

const tick = (): Promise<void> => new Promise((r) => process.nextTick(r));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function waitFor(check: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(10);
  }
}

describe('ReloadingCertificateProvider', () => {
  it('hands a new listener the current certificate, key and CA on the next tick', async () => {
    const o = observe(mounted());
    o.listen();
    expect(o.certs).toEqual([]);
    await tick();
    expect(o.certs).toEqual([pairA.cert]);
    expect(o.keys).toEqual([pairA.key]);
    expect(o.cas).toEqual([caA.cert]);
  });

  it('does not publish a certificate whose key has not been replaced yet, and publishes the pair once it has', async () => {
    const files = mounted();
    const o = observe(files, 60_000);
    o.listen();
    await tick();

    replaceFile(files.certFile, pairB.cert);
    await o.provider.refresh();
    expect(o.certs).toEqual([pairA.cert]);
    expect(o.reloads).toHaveLength(1);
    expect(o.reloads[0]!.result).toBe('failed');
    expect(o.reloads[0]!.detail).toContain(`${files.keyFile}: private key does not match the certificate in ${files.certFile}`);

    replaceFile(files.keyFile, pairB.key);
    await o.provider.refresh();
    expect(o.certs).toEqual([pairA.cert, pairB.cert]);
    expect(o.keys).toEqual([pairA.key, pairB.key]);
    expect(o.reloads.at(-1)).toMatchObject({ result: 'ok' });
    expect(o.reloads.at(-1)!.detail).toContain('CN=server-b');
    expect(o.nulls).toBe(0);
  });

  it('keeps the last good set when files turn to garbage, reports each bad content once, and recovers', async () => {
    const files = mounted();
    const o = observe(files, 60_000);
    o.listen();
    await tick();

    replaceFile(files.certFile, 'not a certificate\n');
    replaceFile(files.caFile, '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
    await o.provider.refresh();
    await o.provider.refresh();
    expect(o.reloads.map((r) => r.result)).toEqual(['failed', 'failed']);
    expect(o.reloads[0]!.detail).toContain(`${files.certFile}: holds no PEM certificate`);
    expect(o.reloads[1]!.detail).toContain(`${files.caFile}: certificate 1 does not parse`);
    expect(o.certs).toEqual([pairA.cert]);
    expect(o.cas).toEqual([caA.cert]);

    replaceFile(files.keyFile, 'garbage key');
    await o.provider.refresh();
    expect(o.reloads).toHaveLength(3);
    expect(o.reloads[2]!.result).toBe('failed');

    replaceFile(files.certFile, pairB.cert);
    replaceFile(files.keyFile, pairB.key);
    replaceFile(files.caFile, caB.cert + caA.cert);
    await o.provider.refresh();
    expect(o.certs).toEqual([pairA.cert, pairB.cert]);
    expect(o.cas).toEqual([caA.cert, caB.cert + caA.cert]);
    expect(o.reloads.slice(3).map((r) => r.result)).toEqual(['ok', 'ok']);
    expect(o.reloads.at(-1)!.detail).toContain('CA bundle of 2');
    expect(o.nulls).toBe(0);
  });

  it('keeps the last good set while a file is missing', async () => {
    const files = mounted();
    const o = observe(files, 60_000);
    o.listen();
    await tick();
    rmSync(files.keyFile);
    await o.provider.refresh();
    expect(o.reloads).toEqual([{ result: 'failed', detail: expect.stringContaining(`${files.keyFile}: cannot be read`) }]);
    expect(o.nulls).toBe(0);
    expect(o.certs).toEqual([pairA.cert]);
    // The same file back: nothing to publish, nothing more to report.
    writeFileSync(files.keyFile, pairA.key);
    await o.provider.refresh();
    expect(o.certs).toEqual([pairA.cert]);
    expect(o.reloads).toHaveLength(1);
  });

  it('follows a Kubernetes Secret volume update (..data symlink swapped to a new directory)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'llmgw-secret-'));
    const writeVersion = (name: string, pair: Issued): void => {
      mkdirSync(join(dir, name));
      writeFileSync(join(dir, name, 'tls.crt'), pair.cert);
      writeFileSync(join(dir, name, 'tls.key'), pair.key);
    };
    writeVersion('..v1', pairA);
    symlinkSync('..v1', join(dir, '..data'));
    symlinkSync('..data/tls.crt', join(dir, 'tls.crt'));
    symlinkSync('..data/tls.key', join(dir, 'tls.key'));
    const o = observe({ certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key') }, 60_000);
    o.listen();
    await tick();

    writeVersion('..v2', pairB);
    symlinkSync('..v2', join(dir, '..data_tmp'));
    renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
    await o.provider.refresh();
    expect(o.certs).toEqual([pairA.cert, pairB.cert]);
  });

  it('refuses at construction, naming the file, a missing or unparseable file or a mismatched pair', () => {
    const files = mounted();
    const missing = join(files.dir, 'absent.crt');
    const construct = (opts: { certFile?: string; keyFile?: string; caFile?: string }): TlsConfigError => {
      try {
        new ReloadingCertificateProvider(opts);
      } catch (err) {
        expect(err).toBeInstanceOf(TlsConfigError);
        return err as TlsConfigError;
      }
      throw new Error('constructor did not throw');
    };
    expect(construct({ caFile: missing }).message).toBe(`${missing}: cannot be read (ENOENT: no such file or directory, open '${missing}')`);
    expect(construct({ certFile: missing, keyFile: files.keyFile }).file).toBe(missing);
    expect(construct({ certFile: files.certFile, keyFile: missing }).file).toBe(missing);

    const garbageKey = join(files.dir, 'garbage.key');
    writeFileSync(garbageKey, 'nope');
    expect(construct({ certFile: files.certFile, keyFile: garbageKey }).message).toMatch(new RegExp(`^${garbageKey}: private key does not parse`));
    expect(construct({ certFile: files.certFile, keyFile: pairB.keyFile }).message).toBe(`${pairB.keyFile}: private key does not match the certificate in ${files.certFile}`);
    expect(construct({ certFile: files.certFile }).message).toContain(`only the certificate file ${files.certFile}`);
    expect(construct({}).message).toContain('needs a certificate and key, or a CA file');

    // A certificate file that is really a key.
    const swapped = join(files.dir, 'swapped.crt');
    copyFileSync(files.keyFile, swapped);
    expect(construct({ caFile: swapped }).message).toBe(`${swapped}: holds no PEM certificate`);
  });

  it('polls every refreshMs only while someone listens', async () => {
    const files = mounted();
    const o = observe(files, 20);
    // Nobody listens: changes are not even read.
    replaceFile(files.caFile, caB.cert);
    await sleep(120);
    expect(o.reloads).toEqual([]);

    o.listen();
    await waitFor(() => o.cas.at(-1) === caB.cert);
    expect(o.reloads).toEqual([{ result: 'ok', detail: expect.stringContaining('CN=unit-ca-b') }]);

    o.unlisten();
    replaceFile(files.caFile, caA.cert);
    await sleep(120);
    expect(o.reloads).toHaveLength(1);
  });

  it('re-reads at once when listened to again after an idle spell, so the first update handed out is current', async () => {
    const files = mounted();
    const o = observe(files, 20);
    o.listen();
    await tick();
    o.unlisten();
    replaceFile(files.caFile, caB.cert);
    await sleep(60);
    o.listen();
    await tick();
    // Without the re-read the next tick would hand out CA A held from before.
    expect(o.cas).toEqual([caA.cert, caB.cert]);
  });

  it('stops polling and publishing once closed', async () => {
    const files = mounted();
    const o = observe(files, 20);
    o.listen();
    await tick();
    replaceFile(files.caFile, caB.cert);
    await waitFor(() => o.cas.length === 2);

    o.provider.close();
    replaceFile(files.caFile, caA.cert);
    replaceFile(files.certFile, pairB.cert);
    replaceFile(files.keyFile, pairB.key);
    await sleep(150);
    await o.provider.refresh();
    o.listen();
    await tick();
    expect(o.cas).toEqual([caA.cert, caB.cert]);
    expect(o.certs).toEqual([pairA.cert]);
    expect(o.reloads).toHaveLength(1);
  });
});
