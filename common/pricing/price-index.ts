// Finds a model's prices in a table, by provider type and upstream model: the exact id (or an alias),
// then the id without a dated snapshot suffix (`claude-sonnet-4-5-20250929` → `claude-sonnet-4-5`,
// `gpt-4o-2024-08-06` → `gpt-4o`). OpenAI and Anthropic models are looked up in their own section only;
// openai-compatible ones (and reports that name no provider type) in the openai-compatible section, then by
// name in the others. Anything else gets the table's default and counts as unpriced. Answers are cached per
// (provider type, model), so a lookup on the request path is two Map reads.
import { PRICED_PROVIDERS, type PricedProvider, type PriceTable } from './price-table.js';
import { ratesOf, type Rates } from './price-usage.js';

export interface ResolvedPrice {
  rates: Rates;
  /** False: the table does not price the model and `rates` are its default. */
  priced: boolean;
  /** The table's id of the model ('' when unpriced). */
  model: string;
}

/** A dated snapshot suffix: `-2025-08-06` (OpenAI) or `-20250929` (Anthropic). */
const SNAPSHOT = /-(?:\d{4}-\d{2}-\d{2}|\d{8})$/;
/** Cached answers per provider type: model strings can come from tenants (usage reports), so the cache is bounded. */
const MAX_CACHED = 1000;

const OWN: Record<'openai' | 'anthropic', readonly PricedProvider[]> = { openai: ['openai'], anthropic: ['anthropic'] };
const BY_NAME: readonly PricedProvider[] = ['openai-compatible', 'openai', 'anthropic'];

export class PriceIndex {
  private readonly sections = new Map<PricedProvider, Map<string, ResolvedPrice>>();
  private readonly fallback: ResolvedPrice;
  private readonly cache = new Map<string, Map<string, ResolvedPrice>>();

  constructor(readonly table: Readonly<PriceTable>) {
    this.fallback = { rates: ratesOf(table.default), priced: false, model: '' };
    for (const p of PRICED_PROVIDERS) {
      const byId = new Map<string, ResolvedPrice>();
      for (const [id, price] of Object.entries(table.models[p] ?? {})) {
        const resolved = { rates: ratesOf(price), priced: true, model: id };
        byId.set(id, resolved);
        for (const alias of price.aliases ?? []) if (!byId.has(alias)) byId.set(alias, resolved);
      }
      this.sections.set(p, byId);
    }
  }

  /** The prices of `model` served by a provider of `providerType` ('' when unknown). */
  resolve(providerType: string, model: string): ResolvedPrice {
    let cached = this.cache.get(providerType);
    if (cached === undefined) this.cache.set(providerType, (cached = new Map()));
    const hit = cached.get(model);
    if (hit !== undefined) return hit;
    const found = this.find(providerType, model);
    if (cached.size >= MAX_CACHED) cached.clear();
    cached.set(model, found);
    return found;
  }

  /** Whether the table prices `model` under any provider type (for bounded metric labels). */
  knows(model: string): boolean {
    for (const s of this.sections.values()) if (s.has(model)) return true;
    return this.table.metricModels.includes(model);
  }

  private find(providerType: string, model: string): ResolvedPrice {
    const sections = providerType === 'openai' || providerType === 'anthropic' ? OWN[providerType] : BY_NAME;
    const base = model.replace(SNAPSHOT, '');
    for (const id of base === model ? [model] : [model, base]) {
      for (const s of sections) {
        const found = this.sections.get(s)?.get(id);
        if (found !== undefined) return found;
      }
    }
    return this.fallback;
  }
}
