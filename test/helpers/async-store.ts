// For the store tests: SqliteQuotaStore behind the asynchronous QuotaStore interface, so the contract suite
// runs on the embedded store too (the service itself uses it synchronously). Each call runs synchronously.
import type { QuotaStore } from '../../quota-service/store-api.js';
import type { SqliteQuotaStore } from '../../quota-service/store.js';

export function asyncStore(s: SqliteQuotaStore): QuotaStore {
  // `async` turns the store's synchronous throws into rejections, as a database's errors arrive.
  return {
    budgets: async () => s.budgets(),
    upsertBudget: async (b) => s.upsertBudget(b),
    deleteBudget: async (scope, window, unit) => s.deleteBudget(scope, window, unit),
    used: async (scope, window, startMs) => s.used(scope, window, startMs),
    costNano: async (scope, window, startMs) => s.costNano(scope, window, startMs),
    addUsage: async (scope, window, startMs, endMs, tokens, kinds, costNano) => s.addUsage(scope, window, startMs, endMs, tokens, kinds, costNano),
    totals: async (scope, window, startMs) => s.totals(scope, window, startMs),
    addTaggedUsage: async (scope, window, startMs, endMs, tag, tokens, costNano) => s.addTaggedUsage(scope, window, startMs, endMs, tag, tokens, costNano),
    taggedUsage: async (scope, window, startMs, key) => s.taggedUsage(scope, window, startMs, key),
    addModelUsage: async (scope, window, span, model, tokens, totals) => s.addModelUsage(scope, window, span, model, tokens, totals),
    modelUsage: async (scope, window, startMs) => s.modelUsage(scope, window, startMs),
    scopesUnder: async (scope, window, span) => s.scopesUnder(scope, window, span),
    history: async (scope, window, beforeMs, limit) => s.history(scope, window, beforeMs, limit),
    pruneUsage: async (window, beforeMs, opts) => s.pruneUsage(window, beforeMs, opts),
    leases: async () => s.leases(),
    saveLease: async (l) => s.saveLease(l),
    deleteLease: async (id) => s.deleteLease(id),
    acked: async (incarnation) => s.acked(incarnation),
    setAcked: async (incarnation, sequence, seenMs) => s.setAcked(incarnation, sequence, seenMs),
    owner: async (incarnation) => s.owner(incarnation),
    setOwner: async (incarnation, owner, seenMs) => s.setOwner(incarnation, owner, seenMs),
    pruneAcked: async (beforeMs, limit) => s.pruneAcked(beforeMs, limit),
    teams: async () => s.teams(),
    setTeam: async (team, namespaces) => s.setTeam(team, namespaces),
    // A local file answers at once or throws (not a database, gone): one read says which.
    ping: async () => void s.acked(''),
    close: async () => s.close(),
  };
}
