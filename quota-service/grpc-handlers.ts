// The gRPC face of the allocator: QuotaService for sidecars, QuotaAdmin for operators. Typed errors
// become gRPC statuses here, and only here.
import { status as grpcStatus, type ServerUnaryCall, type sendUnaryData, type UntypedServiceImplementation } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type {
  AcquireLeaseRequest,
  BudgetMsg,
  LeaseResponse,
  ReleaseLeaseRequest,
  RenewLeaseRequest,
  ReportUsageRequest,
  SetBudgetRequest,
  UsageResponse,
  WindowEnum,
} from '../proto/messages.js';
import type { Allocator, Grant } from './allocator.js';
import { budgetMsg, optionalWindowOf, priorityOf, reportsOf, windowEnum, windowOf } from './convert.js';
import { invalidArgument, QuotaError } from './errors.js';
import type { QuotaMetrics } from './quota-metrics.js';

type Unary<Req, Res> = (req: Req) => Res;

function unary<Req, Res>(method: string, metrics: QuotaMetrics, logger: Logger, fn: Unary<Req, Res>) {
  return (call: ServerUnaryCall<Req, Res>, cb: sendUnaryData<Res>): void => {
    try {
      const res = fn(call.request);
      metrics.rpcs.inc({ method, code: 'OK' });
      cb(null, res);
    } catch (err) {
      if (err instanceof QuotaError) {
        metrics.rpcs.inc({ method, code: grpcStatus[err.code] });
        cb({ code: err.code, details: err.message });
        return;
      }
      logger.error({ err, method }, 'quota rpc failed');
      metrics.rpcs.inc({ method, code: 'INTERNAL' });
      cb({ code: grpcStatus.INTERNAL, details: 'internal error in the quota service' });
    }
  };
}

function leaseResponse(g: Grant): LeaseResponse {
  return {
    leaseId: g.leaseId,
    grantedTokens: g.granted,
    leaseTokens: g.leaseTokens,
    unlimited: g.unlimited,
    ttlMs: g.ttlMs,
    refreshAfterMs: g.refreshAfterMs,
    remainingTokens: g.remaining,
    retryAfterMs: g.retryAfterMs,
    ackedSequence: g.acked,
    windowStartMs: g.windowStartMs,
  };
}

const identityOf = (m: { namespace: string; service: string; team: string; pod: string } | null) => {
  if (m === null) throw invalidArgument('identity is required');
  return { namespace: m.namespace, service: m.service, team: m.team, pod: m.pod };
};

export function quotaServiceHandlers(alloc: Allocator, metrics: QuotaMetrics, logger: Logger): UntypedServiceImplementation {
  const granted = (g: Grant, priority: string): LeaseResponse => {
    if (g.granted > 0) metrics.grantedTokens.inc({ priority }, g.granted);
    metrics.leases.set(alloc.activeLeases);
    return leaseResponse(g);
  };
  return {
    AcquireLease: unary('AcquireLease', metrics, logger, (r: AcquireLeaseRequest) => {
      const priority = priorityOf(r.priority);
      const g = alloc.acquire({ identity: identityOf(r.identity), priority, incarnation: r.incarnation, need: r.needTokens, demand: r.demandTokensPerSecond });
      return granted(g, priority);
    }),
    RenewLease: unary('RenewLease', metrics, logger, (r: RenewLeaseRequest) => {
      metrics.reports.inc(undefined, r.reports.length);
      const g = alloc.renew({ leaseId: r.leaseId, need: r.needTokens, demand: r.demandTokensPerSecond, reports: reportsOf(r.reports), unused: r.unusedTokens });
      return granted(g, 'renew');
    }),
    ReleaseLease: unary('ReleaseLease', metrics, logger, (r: ReleaseLeaseRequest) => {
      metrics.reports.inc(undefined, r.reports.length);
      const acked = alloc.release(r.leaseId, reportsOf(r.reports));
      metrics.leases.set(alloc.activeLeases);
      return { ackedSequence: acked };
    }),
    ReportUsage: unary('ReportUsage', metrics, logger, (r: ReportUsageRequest) => {
      metrics.reports.inc(undefined, r.reports.length);
      return { ackedSequence: alloc.report(identityOf(r.identity), r.incarnation, reportsOf(r.reports)) };
    }),
  };
}

export function quotaAdminHandlers(alloc: Allocator, metrics: QuotaMetrics, logger: Logger): UntypedServiceImplementation {
  const list = (budgets: ReturnType<Allocator['listBudgets']>): { budgets: BudgetMsg[] } => ({ budgets: budgets.map(budgetMsg) });
  return {
    SetBudget: unary('SetBudget', metrics, logger, (r: SetBudgetRequest) => {
      const floors = r.floors === null ? undefined : { batch: r.floors.batch, background: r.floors.background };
      return budgetMsg(alloc.setBudget(r.scope, windowOf(r.window), r.tokens, floors));
    }),
    GetBudget: unary('GetBudget', metrics, logger, (r: { scope: string }) => list(alloc.getBudgets(r.scope))),
    ListBudgets: unary('ListBudgets', metrics, logger, () => list(alloc.listBudgets())),
    DeleteBudget: unary('DeleteBudget', metrics, logger, (r: { scope: string; window: WindowEnum }) => ({
      deleted: alloc.deleteBudget(r.scope, optionalWindowOf(r.window)),
    })),
    GetUsage: unary('GetUsage', metrics, logger, (r: { scope: string; window: WindowEnum; last: number; byTag: string }): UsageResponse => {
      const window = windowOf(r.window);
      const rows = alloc.usage(r.scope, window, r.last > 0 ? r.last : 10, r.byTag === '' ? undefined : r.byTag);
      return {
        scope: r.scope,
        window: windowEnum(window),
        windows: rows.map((w) => ({
          windowStartMs: w.startMs,
          windowEndMs: w.endMs,
          usedTokens: w.used,
          byTag: (w.byTag ?? []).map((t) => ({ value: t.value, usedTokens: t.used })),
        })),
      };
    }),
  };
}
