// The price table this sidecar shows costs by (x-llmgw-cost-usd, the access log's costUsd): the shipped
// table until the quota service sends its own with a lease answer, then the service's. What a namespace is
// charged is priced by the service from the reported tokens, whatever this book says; the book prices what
// requests reserve from and settle to a lease's dollar balance (quota/usd-balance.ts) by the same table.
import type { Logger } from 'pino';
import { PriceIndex } from '../../common/pricing/price-index.js';
import { priceTableFromMsg } from '../../common/pricing/price-table-msg.js';
import { priceTokens, type Rates } from '../../common/pricing/price-usage.js';
import { SHIPPED_PRICES } from '../../common/pricing/shipped-prices.js';
import type { PriceTableMsg } from '../../proto/messages.js';
import type { Usage } from '../formats/usage.js';

/** What the lease manager hands a price table to (LeaseResponse.prices), and the version it says it holds. */
export interface PriceSink {
  /** The version of the service's table held ('' : none yet). */
  readonly version: string;
  receive(table: PriceTableMsg): void;
  /** Nano-USD per token by kind, for `model` served by a provider of `providerType` (two Map reads). */
  ratesOf(providerType: string, model: string): Rates;
}

export class PriceBook implements PriceSink {
  private index = new PriceIndex(SHIPPED_PRICES);
  private held = '';

  constructor(private readonly logger?: Logger) {}

  get version(): string {
    return this.held;
  }

  receive(table: PriceTableMsg): void {
    if (table.version === this.held) return;
    this.index = new PriceIndex(priceTableFromMsg(table));
    this.held = table.version;
    this.logger?.info({ version: table.version, models: table.models.length, asOf: table.asOf }, "using the quota service's price table");
  }

  ratesOf(providerType: string, model: string): Rates {
    return this.index.resolve(providerType, model).rates;
  }

  /** What `usage` of `model`, served by a provider of `providerType`, cost in USD (to the nano-USD). */
  costUsd(providerType: string, model: string, usage: Usage): number {
    const rates = this.index.resolve(providerType, model).rates;
    return Math.round(priceTokens(rates, usage.inputTokens, usage.outputTokens, usage.cachedInputTokens, usage.cacheWriteTokens)) / 1e9;
  }
}
