// Provider keys held by the quota service (`providers.<id>.apiKeyFrom: quota`): fetched over TLS once the
// sidecar starts, again whenever a lease answer carries a new keys version (a rotation), and retried
// until every key wanted has arrived. Held in memory only: never written, never logged.
import type { Logger } from 'pino';
import type { QuotaRpc } from './quota-client.js';

const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 30_000;

export class ProviderKeyRing {
  private keys: ReadonlyMap<string, string> = new Map();
  private version = '';
  private inflight: Promise<void> | undefined;
  private retry: NodeJS.Timeout | undefined;
  private retryMs = RETRY_MIN_MS;
  private closed = false;

  constructor(
    /** The key names the config's providers ask for. */
    private readonly names: () => readonly string[],
    private readonly rpc: QuotaRpc,
    private readonly logger: Logger,
    private readonly timeoutMs = 5000,
  ) {}

  get(name: string): string | undefined {
    return this.keys.get(name);
  }

  /** Every key the config asks for is here. */
  get ready(): boolean {
    return this.names().every((n) => this.keys.has(n));
  }

  /** Takes over what a ring of the previous quota settings held, so a config reload never leaves providers without keys. */
  adopt(previous: ProviderKeyRing): void {
    this.keys = previous.keys;
    this.version = previous.version;
  }

  /** A lease answer's keys version: a different one means the keys changed on the service. */
  observe(version: string): void {
    if (version !== this.version || !this.ready) void this.refresh();
  }

  refresh(): Promise<void> {
    if (this.names().length === 0 || this.closed) return Promise.resolve();
    this.inflight ??= this.fetch().finally(() => {
      this.inflight = undefined;
    });
    return this.inflight;
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.retry);
  }

  private async fetch(): Promise<void> {
    const names = [...new Set(this.names())];
    clearTimeout(this.retry);
    try {
      const res = await this.rpc.providerKeys(names, this.timeoutMs);
      this.keys = new Map(Object.entries(res.keys));
      this.version = res.version;
      const missing = names.filter((n) => !this.keys.has(n));
      if (missing.length > 0) this.logger.error({ missing }, 'the quota service holds no key this namespace may use for these providers');
      else this.logger.info({ names }, 'provider keys received from the quota service');
      if (missing.length === 0) {
        this.retryMs = RETRY_MIN_MS;
        return;
      }
    } catch (err) {
      this.logger.warn({ err: String(err) }, 'could not fetch provider keys from the quota service');
    }
    if (this.closed) return;
    this.retry = setTimeout(() => void this.refresh(), this.retryMs);
    this.retry.unref();
    this.retryMs = Math.min(RETRY_MAX_MS, this.retryMs * 2);
  }
}
