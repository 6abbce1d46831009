// The price table the quota service charges by: the shipped table, with the operator's file over it when
// given (`--prices FILE`, YAML or JSON, re-read on change; a bad change is logged and the last good table
// stays). Its version (a digest of the table) goes with every lease answer, and the table itself to
// sidecars that hold another version.
import { createHash } from 'node:crypto';
import { watchedFile, type WatchedFile } from '../common/watched-file.js';
import { parsePriceFile } from '../common/pricing/price-file.js';
import { PriceIndex } from '../common/pricing/price-index.js';
import { mergePriceTables, type PriceTable } from '../common/pricing/price-table.js';
import { priceTableMsg } from '../common/pricing/price-table-msg.js';
import { SHIPPED_PRICES } from '../common/pricing/shipped-prices.js';
import type { PriceTableMsg } from '../proto/messages.js';

/** One table with what is derived from it once. */
export interface LoadedPrices {
  readonly index: PriceIndex;
  readonly version: string;
  /** As LeaseResponse.prices carries it. */
  readonly msg: PriceTableMsg;
}

export function loadedPrices(table: Readonly<PriceTable>): LoadedPrices {
  const version = createHash('sha256').update(JSON.stringify(table)).digest('hex').slice(0, 16);
  return { index: new PriceIndex(table), version, msg: priceTableMsg(table, version) };
}

/** The shipped table with the file's text over it; throws a ConfigError naming every problem of the file. */
export function pricesFromText(text: string, label: string): LoadedPrices {
  return loadedPrices(mergePriceTables(SHIPPED_PRICES, parsePriceFile(text, label)));
}

export class ServicePrices {
  private readonly file: WatchedFile<LoadedPrices> | undefined;
  private readonly fixed: LoadedPrices | undefined;

  /** `path`: the operator's file (absent: the shipped table alone). Throws when the file cannot be used at start. */
  constructor(path?: string, onReload?: (result: 'ok' | 'failed', err?: unknown) => void) {
    if (path === undefined) this.fixed = loadedPrices(SHIPPED_PRICES);
    else this.file = watchedFile({ path, parse: (text) => pricesFromText(text, path), ...(onReload ? { onReload } : {}) });
  }

  get current(): LoadedPrices {
    return this.fixed ?? this.file!.value;
  }

  close(): void {
    this.file?.close();
  }
}
