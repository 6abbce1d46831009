// The USD part of a lease call (nano-USD), from sidecars that keep a USD balance beside tokens
// (usd_leases); absent for older ones, which are then granted no USD balance (see allocator.ts).
import type { UsdAsk } from './allocator.js';
import { wireNumber as num } from './convert.js';

export function usdAskOf(r: {
  usdLeases?: boolean;
  needNanoUsd?: number;
  demandNanoUsdPerSecond?: number;
  requestNanoUsd?: number;
  unusedNanoUsd?: number;
  inflightNanoUsd?: number;
}): { usd?: UsdAsk } {
  if (r.usdLeases !== true) return {};
  return {
    usd: {
      need: Math.max(0, Math.round(num(r.needNanoUsd))),
      demand: num(r.demandNanoUsdPerSecond),
      requestNano: num(r.requestNanoUsd),
      unused: num(r.unusedNanoUsd),
      inflight: num(r.inflightNanoUsd),
    },
  };
}
