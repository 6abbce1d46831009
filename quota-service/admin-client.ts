// A small promise client for QuotaAdmin (used by `llmgw budget`, `llmgw team` and tests): an operator
// token as bearer metadata on every call, TLS when given a CA.
import { Metadata, status as grpcStatus, type Client, type ServiceError } from '@grpc/grpc-js';
import { channelCredentials } from '../common/tls/grpc-credentials.js';
import { loadQuotaProto } from '../proto/load.js';
import type { BudgetMsg, BudgetUnitName, SetBudgetRequest, TeamMsg, UsageRequestMsg, UsageResponse, WindowEnum } from '../proto/messages.js';

export interface AdminClientOptions {
  /** Operator token (admin token, or a service-account token listed in --admin-subjects / --viewer-subjects). */
  token?: string;
  /** Verify the service over TLS. */
  tls?: { caFile: string; serverName?: string; certFile?: string; keyFile?: string };
  timeoutMs?: number;
}

export class AdminCallError extends Error {
  constructor(
    readonly code: grpcStatus,
    message: string,
  ) {
    super(message);
    this.name = 'AdminCallError';
  }
}

export class QuotaAdminClient {
  private readonly client: Client & Record<string, Function>;
  private readonly timeoutMs: number;
  private readonly metadata = new Metadata();
  private readonly closeTls: () => void;

  constructor(
    readonly address: string,
    opts: AdminClientOptions = {},
  ) {
    const { QuotaAdmin } = loadQuotaProto();
    this.timeoutMs = opts.timeoutMs ?? 5000;
    if (opts.token !== undefined) this.metadata.set('authorization', `Bearer ${opts.token}`);
    const channel = channelCredentials(opts.tls);
    this.closeTls = channel.close;
    this.client = new QuotaAdmin(address, channel.credentials, channel.channelOptions) as Client & Record<string, Function>;
  }

  private call<Res>(method: string, req: object): Promise<Res> {
    return new Promise((resolve, reject) => {
      this.client[method]!(req, this.metadata, { deadline: Date.now() + this.timeoutMs }, (err: ServiceError | null, res: Res) => {
        if (err === null) resolve(res);
        else if (err.code === grpcStatus.UNAVAILABLE || err.code === grpcStatus.DEADLINE_EXCEEDED) {
          reject(new AdminCallError(err.code, unreachable(this.address, err, this.timeoutMs)));
        } else reject(new AdminCallError(err.code, err.details || err.message));
      });
    });
  }

  setBudget(req: SetBudgetRequest): Promise<BudgetMsg> {
    return this.call('SetBudget', req);
  }

  async getBudget(scope: string): Promise<BudgetMsg[]> {
    return (await this.call<{ budgets: BudgetMsg[] }>('GetBudget', { scope })).budgets;
  }

  async listBudgets(): Promise<BudgetMsg[]> {
    return (await this.call<{ budgets: BudgetMsg[] }>('ListBudgets', {})).budgets;
  }

  /** `unit`: only the budgets in this unit (default: tokens and USD alike). */
  async deleteBudget(scope: string, window: WindowEnum, unit: BudgetUnitName = 'BUDGET_UNIT_UNSPECIFIED'): Promise<number> {
    return (await this.call<{ deleted: number }>('DeleteBudget', { scope, window, unit })).deleted;
  }

  /**
   * A scope's usage per window. `byTag`: a tag key to break each window down by ('' for none); `more.by`:
   * 'model' or 'scope' to break it down by those; `more.sinceMs`: every window from that instant instead of `last`.
   */
  getUsage(scope: string, window: WindowEnum, last: number, byTag = '', more: Partial<Pick<UsageRequestMsg, 'by' | 'sinceMs'>> = {}): Promise<UsageResponse> {
    const req: UsageRequestMsg = { scope, window, last, byTag, by: more.by ?? '', sinceMs: more.sinceMs ?? 0 };
    return this.call('GetUsage', req);
  }

  setTeam(team: string, namespaces: string[]): Promise<TeamMsg> {
    return this.call('SetTeam', { team, namespaces });
  }

  async listTeams(): Promise<TeamMsg[]> {
    return (await this.call<{ teams: TeamMsg[] }>('ListTeams', {})).teams;
  }

  async deleteTeam(team: string): Promise<number> {
    return (await this.call<{ deleted: number }>('DeleteTeam', { team })).deleted;
  }

  close(): void {
    this.client.close();
    this.closeTls();
  }
}

/** Why the service could not be reached, in words, and what to do about it. */
function unreachable(address: string, err: ServiceError, timeoutMs: number): string {
  const d = err.details ?? '';
  const why =
    err.code === grpcStatus.DEADLINE_EXCEEDED
      ? `no answer within ${timeoutMs / 1000} s`
      : /ECONNREFUSED/.test(d)
        ? 'nothing listens there'
        : /ENOTFOUND|EAI_AGAIN|Name resolution failed|DNS resolution failed/i.test(d)
          ? 'the name does not resolve'
          : /certificate|handshake|SSL|TLS/i.test(d)
            ? `the TLS handshake failed (${d.split('\n')[0]})`
            : d.replace(/\s*Resolution note:\s*$/, '') || 'UNAVAILABLE';
  return `cannot reach the quota service at ${address}: ${why}; start it (llmgw quota-service, or llmgw dev), or point the command at it with --quota-addr HOST:PORT or $LLMGW_QUOTA_ADDR`;
}
