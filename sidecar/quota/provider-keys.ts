// Provider keys held by the quota service (`providers.<id>.apiKeyFrom: quota`): fetched over TLS once the
// sidecar starts, again whenever a lease answer carries a new keys version (a rotation), and retried
// until every key wanted has arrived. Held in memory only: never written, never logged. The ring lives as
// long as the sidecar, across changes of the quota settings, so providers never lose their keys to a reload.
import type { Logger } from 'pino';
import type { QuotaRpc } from './quota-rpc.js';

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
    /** The client of the quota settings in force (undefined while they change, or without `quota`). */
    private readonly rpc: () => QuotaRpc | undefined,
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
    // Between two quota settings there is no client: the next stack asks when it starts.
    const rpc = this.rpc();
    if (rpc === undefined) return;
    try {
      const res = await rpc.providerKeys(names, this.timeoutMs);
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
