// TypeScript shapes of the quota messages as proto-loader hands them over (camelCase fields, int64 as
// number, enums as names). The .proto file is the source of truth.

export type PriorityName = 'PRIORITY_UNSPECIFIED' | 'PRIORITY_INTERACTIVE' | 'PRIORITY_BACKGROUND' | 'PRIORITY_BATCH';
export type BudgetUnitName = 'BUDGET_UNIT_UNSPECIFIED' | 'BUDGET_UNIT_TOKENS' | 'BUDGET_UNIT_USD';
export type WindowEnum = 'WINDOW_UNSPECIFIED' | 'WINDOW_MINUTE' | 'WINDOW_HOUR' | 'WINDOW_DAY' | 'WINDOW_MONTH';

export interface IdentityMsg {
  namespace: string;
  service: string;
  team: string;
  pod: string;
}

/** Tokens by kind (absent from sidecars that predate them). */
export interface TokenKindsMsg {
  inputTokens?: number;
  outputTokens?: number;
  cachedInputTokens?: number;
  cacheWriteTokens?: number;
}

export interface UsageReportMsg extends TokenKindsMsg {
  sequence: number;
  tokens: number;
  startedAtMs: number;
  priority?: PriorityName;
  model?: string;
  tags?: Record<string, string>;
  /** What served the requests (absent from sidecars that predate them). */
  providerType?: string;
  upstreamModel?: string;
}

export interface AcquireLeaseRequest {
  identity: IdentityMsg | null;
  priority: PriorityName;
  incarnation: string;
  needTokens: number;
  demandTokensPerSecond: number;
  /** Absent from sidecars that predate them. */
  requestTokens?: number;
  reports?: UsageReportMsg[];
  waitedRequests?: number;
  waitedSeconds?: number;
  /** The version of the service's price table the sidecar holds ('' or absent: none). */
  pricesVersion?: string;
  /** USD balance beside tokens (absent from sidecars that predate dollar budgets); amounts in nano-USD. */
  usdLeases?: boolean;
  needNanoUsd?: number;
  demandNanoUsdPerSecond?: number;
  requestNanoUsd?: number;
}

export interface RenewLeaseRequest {
  leaseId: string;
  needTokens: number;
  demandTokensPerSecond: number;
  reports: UsageReportMsg[];
  unusedTokens: number;
  /** Absent from sidecars that predate them. */
  requestTokens?: number;
  inflightTokens?: number;
  waitedRequests?: number;
  waitedSeconds?: number;
  pricesVersion?: string;
  /** As in AcquireLeaseRequest; nano-USD. */
  usdLeases?: boolean;
  needNanoUsd?: number;
  demandNanoUsdPerSecond?: number;
  requestNanoUsd?: number;
  unusedNanoUsd?: number;
  inflightNanoUsd?: number;
  /** Increasing per sidecar; a renewal sent again carries the same (absent or 0 from sidecars that predate it). */
  renewal?: number;
}

export interface ReleaseLeaseRequest {
  leaseId: string;
  reports: UsageReportMsg[];
  /** Absent from sidecars that predate them. */
  waitedRequests?: number;
  waitedSeconds?: number;
}

export interface ReportUsageRequest {
  identity: IdentityMsg | null;
  incarnation: string;
  reports: UsageReportMsg[];
}

export interface LeaseResponse {
  leaseId: string;
  grantedTokens: number;
  leaseTokens: number;
  unlimited: boolean;
  ttlMs: number;
  refreshAfterMs: number;
  remainingTokens: number;
  retryAfterMs: number;
  ackedSequence: number;
  windowStartMs: number;
  providerKeysVersion: string;
  /** Absent from services that predate it (and on grants). */
  refusal?: RefusalMsg | null;
  giveBack?: boolean;
  /** Absent (or 0) from services that predate demand-sized leases. */
  targetTokens?: number;
  windowEndMs?: number;
  failOpenTokens?: number;
  failOpenNextTokens?: number;
  /** Absent ('' or null) from services that predate prices; `prices` only when the request named another version. */
  pricesVersion?: string;
  prices?: PriceTableMsg | null;
  /** The lease's USD balance (absent or false from services that predate dollar budgets, or when no USD budget matches); nano-USD. */
  usd?: boolean;
  grantedNanoUsd?: number;
  leaseNanoUsd?: number;
  targetNanoUsd?: number;
  remainingNanoUsd?: number;
  failOpenNanoUsd?: number;
  failOpenNextNanoUsd?: number;
}

/** USD per million tokens, every kind filled in. */
export interface TokenPricesMsg {
  input: number;
  cachedInput: number;
  cacheWrite: number;
  output: number;
  reasoning: number;
}

export interface ModelPriceMsg {
  providerType: string;
  model: string;
  prices: TokenPricesMsg | null;
  aliases: string[];
}

export interface PriceTableMsg {
  version: string;
  asOf: string;
  defaultPrices: TokenPricesMsg | null;
  models: ModelPriceMsg[];
}

export type RefusalReasonName = 'REFUSAL_REASON_UNSPECIFIED' | 'REFUSAL_WINDOW_SPENT' | 'REFUSAL_HELD_BY_LEASES' | 'REFUSAL_EXCEEDS_BUDGET';

export interface RefusalMsg {
  scope: string;
  window: WindowEnum;
  priority: PriorityName;
  reason: RefusalReasonName;
  windowEndMs: number;
  budgetTokens: number;
  classLimitTokens: number;
  leftTokens: number;
  availableTokens: number;
  needTokens: number;
  /** BUDGET_UNIT_USD: the amounts are nano-USD (absent or unspecified from older services: tokens). */
  unit?: BudgetUnitName;
}

export interface ProviderKeysResponse {
  keys: Record<string, string>;
  version: string;
}

export interface TeamMsg {
  team: string;
  namespaces: string[];
}

export interface PriorityFloorsMsg {
  batch: number;
  background: number;
}

export interface BudgetMsg {
  scope: string;
  window: WindowEnum;
  tokens: number;
  floors: PriorityFloorsMsg | null;
  usedTokens: number;
  outstandingTokens: number;
  windowStartMs: number;
  windowEndMs: number;
  /** Absent or unspecified from older services: tokens. */
  unit?: BudgetUnitName;
  /** A USD budget's limit, used and outstanding (nano-USD); for a token budget usedNanoUsd is what its tokens cost. */
  nanoUsd?: number;
  usedNanoUsd?: number;
  outstandingNanoUsd?: number;
}

export interface SetBudgetRequest {
  scope: string;
  window: WindowEnum;
  /** Exactly one of tokens and nanoUsd is set (> 0). */
  tokens: number;
  floors: PriorityFloorsMsg | null;
  nanoUsd?: number;
}

export interface TagUsageMsg {
  value: string;
  usedTokens: number;
  /** Absent from services that predate prices. */
  costNanoUsd?: number;
}

export interface ModelUsageMsg extends TokenKindsMsg {
  providerType: string;
  model: string;
  usedTokens: number;
  costNanoUsd: number;
}

export interface ScopeUsageMsg {
  scope: string;
  usedTokens: number;
  costNanoUsd: number;
}

export interface WindowUsageMsg extends TokenKindsMsg {
  windowStartMs: number;
  windowEndMs: number;
  usedTokens: number;
  byTag: TagUsageMsg[];
  /** Absent from services that predate prices. */
  costNanoUsd?: number;
  byModel?: ModelUsageMsg[];
  byScope?: ScopeUsageMsg[];
}

export interface UsageRequestMsg {
  scope: string;
  window: WindowEnum;
  last: number;
  byTag: string;
  /** '' | 'model' | 'scope'. */
  by: string;
  sinceMs: number;
}

export interface UsageResponse {
  scope: string;
  window: WindowEnum;
  windows: WindowUsageMsg[];
}
