// A lease as the allocator keeps it in memory, and as the store keeps it on disk (one row per lease, its
// USD balance in columns of its own), so that a restarted service knows what every lease holds.
import type { LeaseRow } from './store.js';
import type { Identity } from './scopes.js';
import type { PriorityClass, UnitState } from './unit-grant.js';

export interface Lease {
  id: string;
  owner: string;
  identity: Identity;
  scopes: string[];
  priority: PriorityClass;
  incarnation: string;
  outstanding: number;
  demand: number;
  /** The largest recent request estimate its sidecar saw (tokens). */
  requestTokens: number;
  /** Of `outstanding`, the estimates of requests still running, as its sidecar last said (not stored). */
  inflight: number;
  expiresAtMs: number;
  /** Budget key → start of the window `outstanding` belongs to. */
  windows: Record<string, number>;
  /** When its sidecar was told to renew. */
  renewAtMs: number;
  /** The highest renewal number applied: a renewal sent again gives nothing back twice. */
  renewal: number;
  /** Its fail-open allowance in the window of `windows`, and in later ones (see lease-sizing.ts). */
  failOpen: number;
  failOpenNext: number;
  /** A need refused because other leases hold tokens of these budgets: they give back, not top up, meanwhile. */
  claim?: { keys: string[]; untilMs: number } | undefined;
  /** Its USD balance (nano-USD), when its sidecar keeps one (usd_leases); the token one is the fields above. */
  nano: UnitState | undefined;
}

const PRIORITIES: PriorityClass[] = ['interactive', 'background', 'batch'];

/** The lease a stored row describes; `scopes`: those of its identity now. */
export function leaseFromRow(row: LeaseRow, scopes: string[]): Lease {
  return {
    id: row.id,
    owner: row.owner,
    identity: { namespace: row.namespace, service: row.service, pod: row.pod },
    scopes,
    priority: PRIORITIES[row.priority - 1] ?? 'interactive',
    incarnation: row.incarnation,
    outstanding: row.outstanding,
    demand: row.demand,
    requestTokens: row.requestTokens,
    inflight: 0,
    expiresAtMs: row.expiresAtMs,
    windows: JSON.parse(row.windows) as Record<string, number>,
    // Rows from before renewal times were kept: their expiry.
    renewAtMs: row.renewAtMs > 0 ? row.renewAtMs : row.expiresAtMs,
    renewal: row.renewal,
    failOpen: row.failOpen,
    failOpenNext: row.failOpenNext,
    claim: row.claim === undefined || row.claim === null ? undefined : (JSON.parse(row.claim) as { keys: string[]; untilMs: number }),
    nano:
      row.usd === 1
        ? { outstanding: row.outstandingNano, demand: row.demandNano, requestTokens: row.requestNano, inflight: 0, failOpen: row.failOpenNano, failOpenNext: row.failOpenNextNano }
        : undefined,
  };
}

export function leaseRow(lease: Lease): LeaseRow {
  return {
    id: lease.id,
    namespace: lease.identity.namespace,
    service: lease.identity.service,
    pod: lease.identity.pod,
    team: '',
    priority: PRIORITIES.indexOf(lease.priority) + 1,
    incarnation: lease.incarnation,
    outstanding: lease.outstanding,
    demand: lease.demand,
    requestTokens: lease.requestTokens,
    expiresAtMs: lease.expiresAtMs,
    renewAtMs: lease.renewAtMs,
    renewal: lease.renewal,
    windows: JSON.stringify(lease.windows),
    owner: lease.owner,
    failOpen: lease.failOpen,
    failOpenNext: lease.failOpenNext,
    usd: lease.nano === undefined ? 0 : 1,
    outstandingNano: lease.nano?.outstanding ?? 0,
    demandNano: lease.nano?.demand ?? 0,
    requestNano: lease.nano?.requestTokens ?? 0,
    failOpenNano: lease.nano?.failOpen ?? 0,
    failOpenNextNano: lease.nano?.failOpenNext ?? 0,
    claim: lease.claim === undefined ? null : JSON.stringify(lease.claim),
  };
}
