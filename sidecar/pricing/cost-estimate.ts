// What a request will likely cost before it goes upstream, and what it cost when it ends, in nano-USD, by
// the price book the quota service keeps current: what a request reserves from and settles to its lease's
// dollar balance (quota/usd-balance.ts). The estimate prices the prompt at the highest prompt price (input
// or cache write) and the output at the highest output price (output or reasoning) of every upstream the
// model may be served by (its targets, and those of its fallbacks and context fallbacks), so it errs high,
// as token estimates do. Rates per model are kept until the config or the table changes: on the request
// path, one Map read and two multiplications.
import { chargedNano, type Rates } from '../../common/pricing/price-usage.js';
import type { TokenKinds } from '../../proto/token-kinds.js';
import type { Config } from '../config/schema.js';
import type { PriceSink } from './price-book.js';

interface PromptAndOutput {
  /** Nano-USD per prompt token and per output token, at most. */
  prompt: number;
  output: number;
}

export class CostEstimator {
  private readonly byModel = new Map<string, PromptAndOutput>();
  private config: Config | undefined;
  private book: PriceSink | undefined;
  private version = '';

  /** Nano-USD (whole) of `promptTokens` and `outputTokens` of the app's model `model`, by `book`. */
  estimateNano(book: PriceSink, config: Config, model: string, promptTokens: number, outputTokens: number): number {
    if (config !== this.config || book !== this.book || book.version !== this.version) {
      this.byModel.clear();
      this.config = config;
      this.book = book;
      this.version = book.version;
    }
    let r = this.byModel.get(model);
    if (r === undefined) this.byModel.set(model, (r = highestRates(book, config, model)));
    return Math.ceil(promptTokens * r.prompt + outputTokens * r.output);
  }
}

/** The highest prompt and output prices of the upstreams `model` may be served by. */
function highestRates(book: PriceSink, config: Config, model: string): PromptAndOutput {
  const out = { prompt: 0, output: 0 };
  const m = config.models[model];
  if (m === undefined) return out;
  const names = [model, ...m.fallbacks, ...m.contextFallbacks];
  for (const name of names) {
    for (const t of config.models[name]?.targets ?? []) {
      const r: Rates = book.ratesOf(config.providers[t.provider]?.type ?? '', t.model);
      out.prompt = Math.max(out.prompt, r.input, r.cacheWrite);
      out.output = Math.max(out.output, r.output, r.reasoning);
    }
  }
  return out;
}

/** What a settled request cost (nano-USD, whole), as the quota service prices its report (chargedNano). */
export function usageCostNano(book: PriceSink, providerType: string, model: string, kinds: TokenKinds | undefined, used: number): number {
  return chargedNano(book.ratesOf(providerType, model), kinds, used);
}
