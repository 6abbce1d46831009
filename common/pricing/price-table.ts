// The price table: USD per million tokens by kind of token, per provider type and upstream model, with a
// default for models it does not price. The shipped table (shipped-prices.json) and the operator's file that
// extends or overrides it (`llmgw quota-service --prices FILE`, checked in price-file.ts) share this shape.

/** The provider types a table has sections for (openai-compatible: self-hosted models an operator prices). */
export const PRICED_PROVIDERS = ['openai', 'anthropic', 'openai-compatible'] as const;
export type PricedProvider = (typeof PRICED_PROVIDERS)[number];

/** Model ids as providers write them (letters, digits, `.-_:/@`), up to 128 characters. */
export const MODEL_ID = /^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,127}$/;

/** One model's prices, USD per million tokens. */
export interface ModelPrice {
  /** Every prompt token not read from or written to a prompt cache. */
  input: number;
  output: number;
  /** Prompt tokens read from the prompt cache (absent: the input price). */
  cachedInput?: number | undefined;
  /** Prompt tokens written to the prompt cache (absent: the input price). For Anthropic, the 5-minute rate. */
  cacheWrite?: number | undefined;
  /** Output tokens spent on reasoning, where priced apart (absent: the output price). */
  reasoning?: number | undefined;
  /** Other ids of the same model (e.g. Anthropic's `claude-opus-4-0` for `claude-opus-4`). */
  aliases?: string[] | undefined;
  /** When the price was read from its source (YYYY-MM-DD). */
  asOf?: string | undefined;
  source?: string | undefined;
  note?: string | undefined;
}

/** A price file as written: every part optional (an operator's file adds to the shipped table). */
export interface PriceFile {
  asOf?: string | undefined;
  default?: ModelPrice | undefined;
  models?: Partial<Record<PricedProvider, Record<string, ModelPrice>>> | undefined;
  metricModels?: string[] | undefined;
}

/** A complete table: the shipped one, or the shipped one with an operator's file over it. */
export interface PriceTable {
  asOf: string;
  /** The price of models the table does not price: never free. */
  default: ModelPrice;
  models: Partial<Record<PricedProvider, Record<string, ModelPrice>>>;
  /**
   * Model ids that may name themselves in `llmgw_quota_unpriced_tokens_total{model}` besides the table's
   * own (others are `other`): model names in usage reports are tenant input, so metric labels stay bounded.
   */
  metricModels: string[];
}

/** `file` over `base`: its default and each of its model entries replace the base's; the rest stays. */
export function mergePriceTables(base: PriceTable, file: PriceFile): PriceTable {
  const models: PriceTable['models'] = {};
  for (const p of PRICED_PROVIDERS) {
    const merged = { ...base.models[p], ...file.models?.[p] };
    if (Object.keys(merged).length > 0) models[p] = merged;
  }
  return {
    asOf: file.asOf ?? base.asOf,
    default: file.default ?? base.default,
    models,
    metricModels: [...new Set([...base.metricModels, ...(file.metricModels ?? [])])],
  };
}
