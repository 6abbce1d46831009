// Provider API keys held by the quota service (--provider-keys FILE, re-read on change) and the operator's
// policy of which namespaces may receive which of them. Handed out only to verified sidecars over TLS (see
// grpc-handlers.ts); never logged.
import { randomUUID } from 'node:crypto';
import { parseDocument } from 'yaml';
import * as z from 'zod/mini';
import { watchedFile, type WatchedFile } from '../common/watched-file.js';

const fileSchema = z.strictObject({
  /** Key name (a sidecar provider's apiKeyName, by default its id) → the provider API key. */
  keys: z.record(z.string().check(z.minLength(1)), z.string().check(z.minLength(1))),
  /** Namespace (or "*" for every namespace) → the key names its sidecars may receive; required: nothing is handed out by default. */
  namespaces: z.record(z.string().check(z.minLength(1)), z.array(z.string())),
});

type KeysFile = z.infer<typeof fileSchema>;

interface Loaded {
  file: KeysFile;
  version: string;
}

export function parseProviderKeys(text: string): KeysFile {
  // A YAML error's message quotes the line at fault, which may hold a key: only its position is told.
  const doc = parseDocument(text, { prettyErrors: false });
  const bad = doc.errors[0];
  if (bad !== undefined) throw new Error(`not valid YAML (${bad.code}) at line ${text.slice(0, bad.pos[0]).split('\n').length}`);
  const raw: unknown = doc.toJS();
  const r = fileSchema.safeParse(raw);
  if (!r.success) {
    // Issue paths name keys, never their values.
    throw new Error(r.error.issues.map((i) => `${i.path.join('.') || '(top)'}: ${i.message}`).join('; '));
  }
  for (const [ns, names] of Object.entries(r.data.namespaces)) {
    for (const n of names) if (!(n in r.data.keys)) throw new Error(`namespaces.${ns}: unknown key name "${n}"`);
  }
  return r.data;
}

export class ProviderKeys {
  private readonly file: WatchedFile<Loaded>;

  constructor(path: string, onReload?: (result: 'ok' | 'failed', err?: unknown) => void) {
    this.file = watchedFile({
      path,
      parse: (text) => ({ file: parseProviderKeys(text), version: randomUUID() }),
      ...(onReload ? { onReload } : {}),
    });
  }

  /** Changes whenever the file's keys or policy change (sidecars fetch again when they see a new one). */
  get version(): string {
    return this.file.value.version;
  }

  /** The keys among `names` that `namespace` may receive (own properties only: "constructor" is a namespace name too). */
  forNamespace(namespace: string, names: readonly string[]): Record<string, string> {
    const { keys, namespaces } = this.file.value.file;
    const own = <T>(o: Record<string, T>, k: string): T | undefined => (Object.hasOwn(o, k) ? o[k] : undefined);
    const allowed = new Set([...(own(namespaces, '*') ?? []), ...(own(namespaces, namespace) ?? [])]);
    const out: Record<string, string> = {};
    for (const name of names) {
      const key = own(keys, name);
      if (key !== undefined && allowed.has(name)) out[name] = key;
    }
    return out;
  }

  close(): void {
    this.file.close();
  }
}
