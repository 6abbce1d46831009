// The gRPC face of the allocator: QuotaService for sidecars, QuotaAdmin for operators. Every call is
// authenticated first (auth/authenticator.ts); the identity a lease is charged to comes from the verified
// token, never from the message. Typed errors become gRPC statuses here, and only here.
import { kindsToMsg } from '../proto/token-kinds.js';
import { status as grpcStatus, type Metadata, type ServerUnaryCall, type sendUnaryData, type UntypedServiceImplementation } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type {
  AcquireLeaseRequest,
  BudgetMsg,
  IdentityMsg,
  LeaseResponse,
  ProviderKeysResponse,
  ReleaseLeaseRequest,
  RenewLeaseRequest,
  ReportUsageRequest,
  SetBudgetRequest,
  TeamMsg,
  UsageRequestMsg,
  UsageResponse,
  WindowEnum,
  WindowUsageMsg,
  BudgetUnitName,
} from '../proto/messages.js';
import type { BudgetView, Grant } from './allocator.js';
import type { QuotaAllocator } from './quota-allocator.js';
import type { Access, Authenticator } from './auth/authenticator.js';
import type { VerifiedIdentity } from './auth/token-verifier.js';
import { budgetMsg, optionalUnitOf, optionalWindowOf, priorityOf, refusalMsg, reportsOf, windowEnum, windowOf, wireNumber as num } from './convert.js';
import { usdAskOf } from './usd-ask.js';
import { failedPrecondition, invalidArgument, permissionDenied, QuotaError } from './errors.js';
import { SHIPPED_PRICES } from '../common/pricing/shipped-prices.js';
import { loadedPrices, type LoadedPrices } from './prices.js';
import type { ProviderKeys } from './provider-keys.js';
import { ownerOf, UNVERIFIED } from './ownership.js';
import type { QuotaMetrics } from './quota-metrics.js';
import type { Identity } from './scopes.js';

type Unary<Req, Res> = (req: Req, metadata: Metadata) => Res | Promise<Res>;

function unary<Req, Res>(method: string, metrics: QuotaMetrics, logger: Logger, fn: Unary<Req, Res>) {
  const fail = (err: unknown, cb: sendUnaryData<Res>): void => {
    if (err instanceof QuotaError) {
      metrics.rpcs.inc({ method, code: grpcStatus[err.code] });
      if (err.code === grpcStatus.UNAUTHENTICATED || err.code === grpcStatus.PERMISSION_DENIED) logger.warn({ method, code: grpcStatus[err.code], reason: err.message }, 'quota call refused');
      cb({ code: err.code, details: err.message });
      return;
    }
    logger.error({ err, method }, 'quota rpc failed');
    metrics.rpcs.inc({ method, code: 'INTERNAL' });
    cb({ code: grpcStatus.INTERNAL, details: 'internal error in the quota service' });
  };
  return (call: ServerUnaryCall<Req, Res>, cb: sendUnaryData<Res>): void => {
    try {
      const res = fn(call.request, call.metadata);
      if (res instanceof Promise) {
        res.then(
          (r) => {
            metrics.rpcs.inc({ method, code: 'OK' });
            cb(null, r);
          },
          (err: unknown) => fail(err, cb),
        );
        return;
      }
      metrics.rpcs.inc({ method, code: 'OK' });
      cb(null, res);
    } catch (err) {
      fail(err, cb);
    }
  };
}

/** `sidecarPrices`: the version of the price table the sidecar holds; the table goes along when it differs. */
function leaseResponse(g: Grant, providerKeysVersion: string, prices: LoadedPrices, sidecarPrices: string | undefined): LeaseResponse {
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
    providerKeysVersion,
    refusal: g.refusal === undefined ? null : refusalMsg(g.refusal),
    giveBack: g.giveBack,
    targetTokens: g.targetTokens,
    windowEndMs: g.windowEndMs,
    failOpenTokens: g.failOpen,
    failOpenNextTokens: g.failOpenNext,
    pricesVersion: prices.version,
    prices: sidecarPrices === prices.version ? null : prices.msg,
    ...(g.usd === undefined
      ? {}
      : {
          usd: true,
          grantedNanoUsd: g.usd.granted,
          leaseNanoUsd: g.usd.lease,
          targetNanoUsd: g.usd.target,
          remainingNanoUsd: g.usd.remaining,
          failOpenNanoUsd: g.usd.failOpen,
          failOpenNextNanoUsd: g.usd.failOpenNext,
        }),
  };
}

/** A caller as the allocator knows it: whom it is charged to, and the owner of what it acquires. */
interface Caller {
  identity: Identity;
  owner: string;
}


/**
 * The caller's identity: from the verified token, with every field the message sets checked against it;
 * with --auth none (nothing verified), from the message.
 */
export function callerOf(verified: VerifiedIdentity | undefined, msg: IdentityMsg | null): Caller {
  const m = msg ?? { namespace: '', service: '', team: '', pod: '' };
  if (m.team !== '') throw permissionDenied(`identity.team "${m.team}" is not accepted: team membership is operator data (llmgw team set)`);
  if (verified === undefined) {
    if (m.namespace === '') throw invalidArgument('identity.namespace is required');
    return { identity: { namespace: m.namespace, service: m.service, pod: m.pod }, owner: UNVERIFIED };
  }
  const mismatch = (field: string, said: string, token: string): void => {
    if (said !== '' && said !== token) throw permissionDenied(`identity.${field} "${said}" does not match the token's ${field} "${token}"`);
  };
  mismatch('namespace', m.namespace, verified.namespace);
  mismatch('service', m.service, verified.serviceAccount);
  if (verified.pod !== '') mismatch('pod', m.pod, verified.pod);
  const identity = { namespace: verified.namespace, service: verified.serviceAccount, pod: verified.pod };
  return { identity, owner: ownerOf(identity) };
}

export interface QuotaServiceDeps {
  alloc: QuotaAllocator;
  auth: Authenticator;
  metrics: QuotaMetrics;
  logger: Logger;
  /** Provider keys held centrally (--provider-keys); handed out only when `tls` is on. */
  providerKeys?: ProviderKeys;
  tls: boolean;
  /** The price table in force (default: the shipped one). */
  prices?: () => LoadedPrices;
}

export function quotaServiceHandlers(d: QuotaServiceDeps): UntypedServiceImplementation {
  const { alloc, auth, metrics, logger } = d;
  const shipped = d.prices === undefined ? loadedPrices(SHIPPED_PRICES) : undefined;
  const prices = d.prices ?? (() => shipped!);
  const keysVersion = (): string => (d.providerKeys !== undefined && d.tls && auth.mode !== 'none' ? d.providerKeys.version : '');
  const granted = (g: Grant, sidecarPrices: string | undefined): LeaseResponse => {
    if (g.granted > 0) metrics.grantedTokens.inc({ priority: g.priority }, g.granted);
    metrics.grants.inc({ priority: g.priority, result: g.refusal !== undefined ? 'refused' : g.granted > 0 ? 'granted' : 'none' });
    metrics.leases.set(alloc.activeLeases);
    return leaseResponse(g, keysVersion(), prices(), sidecarPrices);
  };
  // What the sidecars say their requests waited for this service (telemetry, not trusted for anything else).
  const waited = (priority: string, r: { waitedRequests?: number; waitedSeconds?: number }): void => {
    const n = Number(r.waitedRequests ?? 0);
    if (n > 0 && Number.isFinite(n)) metrics.waitedRequests.inc({ priority }, n);
    const s = Number(r.waitedSeconds ?? 0);
    if (s > 0 && Number.isFinite(s)) metrics.waitedSeconds.inc({ priority }, s);
  };
  // Renew and release name only the lease: what is checked is that the caller owns it.
  const ownerOnly = async (md: Metadata): Promise<string> => {
    const verified = await auth.workload(md);
    return verified === undefined ? UNVERIFIED : ownerOf({ namespace: verified.namespace, service: verified.serviceAccount });
  };
  return {
    AcquireLease: unary('AcquireLease', metrics, logger, async (r: AcquireLeaseRequest, md) => {
      const caller = callerOf(await auth.workload(md), r.identity);
      const priority = priorityOf(r.priority);
      metrics.reports.inc(undefined, r.reports?.length ?? 0);
      const g = await alloc.acquire({
        ...caller,
        priority,
        incarnation: r.incarnation,
        need: num(r.needTokens),
        demand: num(r.demandTokensPerSecond),
        requestTokens: num(r.requestTokens),
        reports: reportsOf(r.reports),
        ...usdAskOf(r),
      });
      waited(g.priority, r);
      return granted(g, r.pricesVersion);
    }),
    RenewLease: unary('RenewLease', metrics, logger, async (r: RenewLeaseRequest, md) => {
      const who = await ownerOnly(md);
      metrics.reports.inc(undefined, r.reports.length);
      const g = await alloc.renew({
        leaseId: r.leaseId,
        owner: who,
        need: num(r.needTokens),
        demand: num(r.demandTokensPerSecond),
        reports: reportsOf(r.reports),
        unused: num(r.unusedTokens),
        renewal: num(r.renewal),
        requestTokens: num(r.requestTokens),
        inflight: num(r.inflightTokens),
        ...usdAskOf(r),
      });
      waited(g.priority, r);
      return granted(g, r.pricesVersion);
    }),
    ReleaseLease: unary('ReleaseLease', metrics, logger, async (r: ReleaseLeaseRequest, md) => {
      const who = await ownerOnly(md);
      metrics.reports.inc(undefined, r.reports.length);
      const released = await alloc.release(r.leaseId, who, reportsOf(r.reports));
      waited(released.priority, r);
      const acked = released.acked;
      metrics.leases.set(alloc.activeLeases);
      return { ackedSequence: acked };
    }),
    ReportUsage: unary('ReportUsage', metrics, logger, async (r: ReportUsageRequest, md) => {
      const caller = callerOf(await auth.workload(md), r.identity);
      metrics.reports.inc(undefined, r.reports.length);
      return { ackedSequence: await alloc.report(caller.identity, caller.owner, r.incarnation, reportsOf(r.reports)) };
    }),
    GetProviderKeys: unary('GetProviderKeys', metrics, logger, async (r: { names: string[] }, md): Promise<ProviderKeysResponse> => {
      const verified = await auth.workload(md);
      if (d.providerKeys === undefined) throw failedPrecondition('this quota service holds no provider keys (--provider-keys)');
      if (!d.tls) throw failedPrecondition('provider keys are handed out over TLS only: start the quota service with --tls-cert and --tls-key');
      if (verified === undefined) throw permissionDenied('provider keys are handed out only to verified sidecars (--auth kubernetes or jwks)');
      const keys = d.providerKeys.forNamespace(verified.namespace, r.names ?? []);
      logger.info({ namespace: verified.namespace, pod: verified.pod, names: Object.keys(keys) }, 'provider keys handed out');
      return { keys, version: d.providerKeys.version };
    }),
  };
}

export function quotaAdminHandlers(alloc: QuotaAllocator, auth: Authenticator, metrics: QuotaMetrics, logger: Logger): UntypedServiceImplementation {
  const list = async (budgets: BudgetView[] | Promise<BudgetView[]>): Promise<{ budgets: BudgetMsg[] }> => ({ budgets: (await budgets).map(budgetMsg) });
  /** An admin call that `access` lets through; changes are logged with who made them. */
  const admin = <Req, Res>(method: string, access: Access, fn: (r: Req) => Res | Promise<Res>) =>
    unary(method, metrics, logger, async (r: Req, md: Metadata) => {
      const who = await auth.operator(md, access);
      const res = await fn(r);
      if (access === 'write') logger.info({ method, by: who, request: r }, 'quota admin change');
      return res;
    });
  return {
    SetBudget: admin('SetBudget', 'write', async (r: SetBudgetRequest) => {
      const floors = r.floors === null ? undefined : { batch: r.floors.batch, background: r.floors.background };
      const nanoUsd = Number(r.nanoUsd ?? 0);
      if (nanoUsd !== 0 && Number(r.tokens) !== 0) throw invalidArgument('a budget is in tokens or in USD: set one of tokens and nano_usd, not both');
      if (nanoUsd !== 0) return budgetMsg(await alloc.setBudget(r.scope, windowOf(r.window), nanoUsd, floors, 'usd'));
      return budgetMsg(await alloc.setBudget(r.scope, windowOf(r.window), r.tokens, floors));
    }),
    GetBudget: admin('GetBudget', 'read', (r: { scope: string }) => list(alloc.getBudgets(r.scope))),
    ListBudgets: admin('ListBudgets', 'read', () => list(alloc.listBudgets())),
    DeleteBudget: admin('DeleteBudget', 'write', async (r: { scope: string; window: WindowEnum; unit?: BudgetUnitName }) => ({
      deleted: await alloc.deleteBudget(r.scope, optionalWindowOf(r.window), optionalUnitOf(r.unit)),
    })),
    GetUsage: admin('GetUsage', 'read', async (r: UsageRequestMsg): Promise<UsageResponse> => {
      const window = windowOf(r.window);
      const by = r.by ?? '';
      if (by !== '' && by !== 'model' && by !== 'scope') throw invalidArgument(`by "${by}": expected model or scope (or by_tag for a tag key; a day window for days)`);
      const sinceMs = Number(r.sinceMs ?? 0);
      const rows = await alloc.usage(r.scope, window, r.last > 0 ? r.last : 10, r.byTag === '' ? undefined : r.byTag, {
        ...(by === '' ? {} : { by }),
        ...(sinceMs > 0 ? { sinceMs } : {}),
      });
      return {
        scope: r.scope,
        window: windowEnum(window),
        windows: rows.map(
          (w): WindowUsageMsg => ({
            windowStartMs: w.startMs,
            windowEndMs: w.endMs,
            usedTokens: w.used,
            ...kindsToMsg(w.kinds),
            costNanoUsd: w.costNano,
            byTag: (w.byTag ?? []).map((t) => ({ value: t.value, usedTokens: t.used, costNanoUsd: t.costNano })),
            byModel: (w.byModel ?? []).map((m) => ({ providerType: m.provider, model: m.model, usedTokens: m.used, ...kindsToMsg(m), costNanoUsd: m.costNano })),
            byScope: (w.byScope ?? []).map((s) => ({ scope: s.scope, usedTokens: s.used, costNanoUsd: s.costNano })),
          }),
        ),
      };
    }),
    SetTeam: admin('SetTeam', 'write', (r: TeamMsg): TeamMsg | Promise<TeamMsg> => alloc.setTeam(r.team, r.namespaces ?? [])),
    ListTeams: admin('ListTeams', 'read', async (): Promise<{ teams: TeamMsg[] }> => ({ teams: await alloc.listTeams() })),
    DeleteTeam: admin('DeleteTeam', 'write', async (r: { team: string }) => ({ deleted: await alloc.deleteTeam(r.team) })),
  };
}
