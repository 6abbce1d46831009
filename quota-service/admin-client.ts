// A small promise client for QuotaAdmin (used by `llmgw budget` and tests).
import { credentials, status as grpcStatus, type Client, type ServiceError } from '@grpc/grpc-js';
import { loadQuotaProto } from '../proto/load.js';
import type { BudgetMsg, SetBudgetRequest, UsageResponse, WindowEnum } from '../proto/messages.js';

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

  constructor(
    readonly address: string,
    private readonly timeoutMs = 5000,
  ) {
    const { QuotaAdmin } = loadQuotaProto();
    this.client = new QuotaAdmin(address, credentials.createInsecure()) as Client & Record<string, Function>;
  }

  private call<Res>(method: string, req: object): Promise<Res> {
    return new Promise((resolve, reject) => {
      this.client[method]!(req, { deadline: Date.now() + this.timeoutMs }, (err: ServiceError | null, res: Res) => {
        if (err === null) resolve(res);
        else if (err.code === grpcStatus.UNAVAILABLE || err.code === grpcStatus.DEADLINE_EXCEEDED) {
          reject(new AdminCallError(err.code, `cannot reach the quota service at ${this.address} (${grpcStatus[err.code]}: ${err.details})`));
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

  async deleteBudget(scope: string, window: WindowEnum): Promise<number> {
    return (await this.call<{ deleted: number }>('DeleteBudget', { scope, window })).deleted;
  }

  /** `byTag`: a tag key to break each window down by ('' for none). */
  getUsage(scope: string, window: WindowEnum, last: number, byTag = ''): Promise<UsageResponse> {
    return this.call('GetUsage', { scope, window, last, byTag });
  }

  close(): void {
    this.client.close();
  }
}
