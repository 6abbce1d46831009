// The cost of each request, from the sidecar's price book, in `meta.costUsd`: for a JSON answer at once (so
// x-llmgw-cost-usd goes out with it); for a stream priced when the access log's line is made at its end
// (`meta.costAtEnd`: the usage reported at its start is partial, and no wrapper sits between its frames).
// Placed outside the cache: a hit spent nothing upstream and costs 0. Priced by the provider type and
// upstream model that answered (after fallbacks), from the usage the provider reported; an answer without
// usage (an error, a stream cut before any) has no cost. On the request path: two Map reads and a few
// multiplications.
import { formatUsd } from '../../common/pricing/price-usage.js';
import type { Config } from '../config/schema.js';
import type { Interceptor, ResponseMeta } from '../pipeline/types.js';
import type { PriceBook } from './price-book.js';

export function costInterceptor(opts: { book: PriceBook; config: () => Config }): Interceptor {
  const costOf = (meta: ResponseMeta, model: string): number | undefined => {
    if (meta.usage === undefined) return undefined;
    const provider = meta.provider === undefined ? undefined : opts.config().providers[meta.provider];
    return opts.book.costUsd(provider?.type ?? '', meta.upstreamModel ?? model, meta.usage);
  };
  return (next) => async (req) => {
    const res = await next(req);
    const meta = res.meta;
    if (meta.cache === 'HIT') meta.costUsd = 0;
    else if (res.kind === 'json') {
      const cost = costOf(meta, req.model);
      if (cost !== undefined) meta.costUsd = cost;
    } else {
      meta.costAtEnd = () => costOf(meta, req.model);
    }
    return res;
  };
}

/** `meta.costUsd` as the x-llmgw-cost-usd header writes it: a decimal, up to 9 places (nano-USD), '0' for nothing. */
export const costHeader = (usd: number): string => formatUsd(Math.round(usd * 1e9));
