// TypeScript shapes of the quota messages as proto-loader hands them over (camelCase fields, int64 as
// number, enums as names). The .proto file is the source of truth.

export type PriorityName = 'PRIORITY_UNSPECIFIED' | 'PRIORITY_INTERACTIVE' | 'PRIORITY_BACKGROUND' | 'PRIORITY_BATCH';
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
}

export interface SetBudgetRequest {
  scope: string;
  window: WindowEnum;
  tokens: number;
  floors: PriorityFloorsMsg | null;
}

export interface TagUsageMsg {
  value: string;
  usedTokens: number;
}

export interface WindowUsageMsg extends TokenKindsMsg {
  windowStartMs: number;
  windowEndMs: number;
  usedTokens: number;
  byTag: TagUsageMsg[];
}

export interface UsageResponse {
  scope: string;
  window: WindowEnum;
  windows: WindowUsageMsg[];
}
