// The quota service's Prometheus metrics.
import { Counter, Gauge, Registry } from '../common/metrics/registry.js';

export class QuotaMetrics {
  readonly registry = new Registry();
  readonly rpcs = this.registry.register(new Counter('llmgw_quota_rpcs_total', 'RPCs answered, by method and gRPC status code.', ['method', 'code'] as const));
  readonly grantedTokens = this.registry.register(new Counter('llmgw_quota_granted_tokens_total', 'Tokens granted to leases, by priority.', ['priority'] as const));
  readonly reports = this.registry.register(new Counter('llmgw_quota_reports_total', 'Usage reports received (replays included).'));
  readonly overReports = this.registry.register(
    new Counter('llmgw_quota_over_reports_total', 'Incarnations flagged for reporting well beyond what their leases covered (still charged).'),
  );
  readonly leases = this.registry.register(new Gauge('llmgw_quota_active_leases', 'Leases not yet expired or released.'));
}
