// The price table on the wire (LeaseResponse.prices): every kind's price filled in, so a sidecar prices
// exactly as the service does; sources and notes stay with the service.
import type { ModelPriceMsg, PriceTableMsg, TokenPricesMsg } from '../../proto/messages.js';
import { PRICED_PROVIDERS, type ModelPrice, type PricedProvider, type PriceTable } from './price-table.js';

function pricesMsg(p: ModelPrice): TokenPricesMsg {
  return { input: p.input, cachedInput: p.cachedInput ?? p.input, cacheWrite: p.cacheWrite ?? p.input, output: p.output, reasoning: p.reasoning ?? p.output };
}

export function priceTableMsg(table: Readonly<PriceTable>, version: string): PriceTableMsg {
  const models: ModelPriceMsg[] = [];
  for (const providerType of PRICED_PROVIDERS) {
    for (const [model, p] of Object.entries(table.models[providerType] ?? {})) models.push({ providerType, model, prices: pricesMsg(p), aliases: p.aliases ?? [] });
  }
  return { version, asOf: table.asOf, defaultPrices: pricesMsg(table.default), models };
}

const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : 0);

function priceOf(m: TokenPricesMsg | null | undefined): ModelPrice {
  return { input: num(m?.input), cachedInput: num(m?.cachedInput), cacheWrite: num(m?.cacheWrite), output: num(m?.output), reasoning: num(m?.reasoning) };
}

/** The table a service sent; entries of provider types this build does not know are left out. */
export function priceTableFromMsg(msg: PriceTableMsg): PriceTable {
  const models: PriceTable['models'] = {};
  for (const m of msg.models ?? []) {
    if (!(PRICED_PROVIDERS as readonly string[]).includes(m.providerType)) continue;
    const section = (models[m.providerType as PricedProvider] ??= {});
    section[m.model] = { ...priceOf(m.prices), ...(m.aliases?.length ? { aliases: m.aliases } : {}) };
  }
  return { asOf: msg.asOf, default: priceOf(msg.defaultPrices), models, metricModels: [] };
}
