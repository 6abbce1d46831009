// The quota service's Prometheus metrics.
import { Counter, Gauge, Registry } from '../common/metrics/registry.js';

export class QuotaMetrics {
  readonly registry = new Registry();
  /** rate() of it is the RPCs per second by method: with leases sized by demand it grows with pods, not requests. */
  readonly rpcs = this.registry.register(new Counter('llmgw_quota_rpcs_total', 'RPCs answered, by method and gRPC status code.', ['method', 'code'] as const));
  readonly grantedTokens = this.registry.register(new Counter('llmgw_quota_granted_tokens_total', 'Tokens granted to leases, by priority class.', ['priority'] as const));
  readonly grants = this.registry.register(
    new Counter(
      'llmgw_quota_lease_answers_total',
      'AcquireLease and RenewLease answers by priority class and result (granted: tokens granted; none: nothing needed or nothing free for a top-up; refused: a need was refused).',
      ['priority', 'result'] as const,
    ),
  );
  readonly waitedRequests = this.registry.register(
    new Counter('llmgw_quota_waited_requests_total', 'Requests that waited for this service because their lease could not cover them, as the sidecars report with their next call, by priority class.', ['priority'] as const),
  );
  readonly waitedSeconds = this.registry.register(
    new Counter('llmgw_quota_waited_seconds_total', 'How long those requests waited in all, in seconds, by priority class.', ['priority'] as const),
  );
  readonly reports = this.registry.register(new Counter('llmgw_quota_reports_total', 'Usage reports received (replays included).'));
  readonly overReports = this.registry.register(
    new Counter('llmgw_quota_over_reports_total', 'Incarnations flagged for reporting well beyond what their leases covered (still charged).'),
  );
  readonly leases = this.registry.register(new Gauge('llmgw_quota_active_leases', 'Leases not yet expired or released.'));
  /** Every budget in its current window (set when scraped; alerts divide one by the other). */
  readonly budgetUsed = this.registry.register(
    new Gauge('llmgw_quota_budget_used', 'What each budget\'s current window has consumed, in the budget\'s unit (tokens, or USD).', ['scope', 'window', 'unit'] as const),
  );
  readonly budgetLimit = this.registry.register(
    new Gauge('llmgw_quota_budget_limit', 'Each budget\'s limit per window, in its unit (tokens, or USD).', ['scope', 'window', 'unit'] as const),
  );
  readonly unpricedTokens = this.registry.register(
    new Counter(
      'llmgw_quota_unpriced_tokens_total',
      'Tokens charged at the default price because the price table does not price their model, by model (a model the table or its metricModels names, else other).',
      ['model'] as const,
    ),
  );
  readonly costUsd = this.registry.register(
    new Counter('llmgw_quota_cost_usd_total', 'What reported usage cost in USD, priced by the service\'s table, by scope (scopes that have a budget).', ['scope'] as const),
  );
  readonly priceReloads = this.registry.register(
    new Counter('llmgw_quota_price_reloads_total', 'Changes of the --prices file, by result (applied, or rejected: the last good table stays).', ['result'] as const),
  );
}
