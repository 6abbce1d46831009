// The price table shipped in the build (shipped-prices.json, bundled: it works from dist/ and the image).
// Its numbers come only from the providers' official pages, each entry with its source and date; models
// without a confirmed price are left out and get the default. Checked by a unit test, not at every start.
import shipped from './shipped-prices.json' with { type: 'json' };
import type { PriceTable } from './price-table.js';

export const SHIPPED_PRICES: Readonly<PriceTable> = { metricModels: [], ...(shipped as Omit<PriceTable, 'metricModels'>) };
