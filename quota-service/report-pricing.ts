// What one usage report cost, priced by the service's own table from its tokens by kind (whatever table
// the sidecar holds or shows), and under which model it is kept. Model names and kinds are the sidecar's
// word: a name that is not a model id is kept as `other`, and no kind counts for more than the tokens
// the report charges, so neither what is kept nor a cost can be inflated without bound.
import type { PriceIndex } from '../common/pricing/price-index.js';
import { MODEL_ID, PRICED_PROVIDERS } from '../common/pricing/price-table.js';
import { chargedNano } from '../common/pricing/price-usage.js';
import { noKinds } from '../proto/token-kinds.js';
import type { UsageReport } from './allocator.js';
import { OTHER_MODEL } from './store.js';

export interface PricedReport {
  /** The provider type ('' when not said or unknown) and model it is kept under. */
  model: { provider: string; model: string };
  /** Nano-USD, a whole number. */
  costNano: number;
  /** Set when the table does not price the model: the metric label (a model the table knows, else `other`). */
  unpriced?: string;
}

export function priceReport(prices: PriceIndex, r: UsageReport, tokens: number): PricedReport {
  const provider = (PRICED_PROVIDERS as readonly string[]).includes(r.providerType ?? '') ? r.providerType! : '';
  const name = r.model ?? '';
  const model = { provider, model: name === '' || MODEL_ID.test(name) ? name : OTHER_MODEL };
  const price = prices.resolve(model.provider, model.model);
  const costNano = chargedNano(price.rates, r.kinds ?? noKinds(), tokens);
  return price.priced ? { model, costNano } : { model, costNano, unpriced: prices.knows(model.model) ? model.model : OTHER_MODEL };
}
