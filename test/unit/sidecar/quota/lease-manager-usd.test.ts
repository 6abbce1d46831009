// The lease manager's dollar balance against the real allocator (in process): requests reserve their
// priced estimate from it with no RPC while it covers them and settle to their priced usage; a spent
// dollar budget refuses with a truthful Retry-After, in dollars; one that a request can never fit answers
// 400; while the service is out of reach the class spends at most its share of the dollar budget, and the
// usage arrives once it is back.
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { GatewayError } from '../../../../common/errors.js';
import type { QuotaConfig } from '../../../../sidecar/config/schema.js';
import { LeaseManager, type Reservation } from '../../../../sidecar/quota/lease-manager.js';
import { UsageOutbox } from '../../../../sidecar/quota/usage-outbox.js';
import { windowAt } from '../../../../quota-service/windows.js';
import { openDatabase } from '../../../../sidecar/storage/database.js';
import { fakeClock, type FakeClock } from '../../../helpers/fake-clock.js';
import { inProcessQuota, type InProcessQuota } from '../../../helpers/in-process-quota.js';

/**
 * What a token of these reports costs on the service's side: they name a model no table prices and give no
 * kinds, so the shipped default's highest rate, $75 per million (75,000 nano-USD).
 */
const NANO = 75_000;
const usd = (dollars: number): number => Math.round(dollars * 1e9);
const IDENTITY = { namespace: 'demo', service: 'chat', team: '', pod: 'chat-1' };
const CONFIG: QuotaConfig = {
  tokenFile: '/nonexistent/token',
  address: 'unused:0',
  failMode: 'failOpen',
  failOpenTokensPerMinute: 1_000_000,
  defaultOutputTokens: 1024,
  acquireTimeoutMs: 1000,
  defaultPriority: 'interactive',
};

const open: { close(): unknown }[] = [];
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close();
});

function setup(): { clock: FakeClock; quota: InProcessQuota; m: LeaseManager } {
  const clock = fakeClock();
  const quota = inProcessQuota(clock);
  const db = openDatabase(':memory:');
  open.push(db);
  const m = new LeaseManager({ rpc: quota.rpc, outbox: new UsageOutbox(db), identity: () => IDENTITY, config: CONFIG, clock, logger: pino({ level: 'silent' }), tickEveryMs: 20 });
  open.push(m);
  return { clock, quota, m };
}

const costNano = (q: InProcessQuota): number => q.allocator.usage('namespace/demo', 'day', 1)[0]!.costNano;

async function refusal(p: () => unknown): Promise<GatewayError> {
  try {
    await p();
  } catch (err) {
    if (err instanceof GatewayError) return err;
    throw err;
  }
  throw new Error('expected a refusal');
}

describe('lease manager: dollar budgets', () => {
  it('reserves the priced estimate from the dollar balance with no RPC while it covers it, and settles to the priced usage', async () => {
    const { quota, m } = setup();
    quota.allocator.setBudget('namespace/demo', 'day', usd(10), undefined, 'usd');
    const first = await m.reserve('interactive', 100, 100 * NANO);
    expect(first.nano).toBe(100 * NANO);
    m.settle(first, 60, 'm', undefined, undefined, undefined, 60 * NANO);
    const calls = quota.calls.AcquireLease ?? 0;
    const sync: Reservation[] = [];
    // The lease is sized to four such requests: three more fit what is left.
    for (let i = 0; i < 3; i++) {
      const r = m.reserve('interactive', 100, 100 * NANO);
      expect(r).not.toBeInstanceOf(Promise);
      sync.push(r as Reservation);
    }
    expect(quota.calls.AcquireLease).toBe(calls);
    for (const r of sync) m.settle(r, 50, 'm', undefined, undefined, undefined, 50 * NANO);
    await m.close();
    expect(costNano(quota)).toBe((60 + 3 * 50) * NANO);
    const b = quota.allocator.getBudgets('namespace/demo')[0]!;
    expect([b.unit, b.used, b.outstanding]).toEqual(['usd', (60 + 3 * 50) * NANO, 0]);
  });

  it('refuses in dollars once the dollar budget is spent, with a Retry-After to the window\'s end', async () => {
    const { clock, quota, m } = setup();
    quota.allocator.setBudget('namespace/demo', 'day', usd(0.1), undefined, 'usd');
    // 1,333 tokens at $75 per million: $0.099975.
    quota.allocator.report({ namespace: 'demo', service: '', pod: 'x' }, 'o', 'earlier', [{ sequence: 1, tokens: 1333, startedAtMs: clock.now() }]);
    const err = await refusal(() => m.reserve('interactive', 10, 10 * NANO));
    expect(err.status).toBe(429);
    expect(err.code).toBe('llmgw_quota_exhausted');
    expect(err.message).toContain("budget namespace/demo ($0.10 a day) has $0.000025 left for interactive requests in this day, less than this request's estimated cost $0.00075");
    expect(err.retryAfterSeconds).toBe(Math.ceil((windowAt('day', clock.now()).endMs - clock.now()) / 1000));
    // A second one within the second is refused without asking again.
    const calls = (quota.calls.AcquireLease ?? 0) + (quota.calls.RenewLease ?? 0);
    await refusal(() => m.reserve('interactive', 10, 10 * NANO));
    expect((quota.calls.AcquireLease ?? 0) + (quota.calls.RenewLease ?? 0)).toBe(calls);
  });

  it('answers 400 when the priced estimate is more than the class may use of a whole window', async () => {
    const { m, quota } = setup();
    quota.allocator.setBudget('namespace/demo', 'hour', usd(0.01), { batch: 0.5, background: 0.2 }, 'usd');
    const err = await refusal(() => m.reserve('batch', 100, 100 * NANO));
    expect(err.status).toBe(400);
    expect(err.code).toBe('llmgw_request_exceeds_budget');
    expect(err.message).toContain("this request's estimated cost $0.0075 (its prompt at the input price plus max_tokens at the output price) is more than batch requests may use of budget namespace/demo ($0.01 a hour, of which batch requests may use $0.005)");
    expect(err.message).toContain('send it with a higher x-llmgw-priority');
    expect(err.message).toContain('llmgw budget set namespace/demo --usd AMOUNT --window hour');
    const ok = await m.reserve('interactive', 100, 100 * NANO);
    expect(ok.nano).toBe(100 * NANO);
  });

  it('while the service is out of reach spends at most the class\'s share of the dollar budget, and delivers the usage once it is back', async () => {
    const { clock, quota, m } = setup();
    quota.allocator.setBudget('namespace/demo', 'day', usd(1), undefined, 'usd');
    const held = await m.reserve('interactive', 1000, 1000 * NANO);
    m.settle(held, 1000, 'm', undefined, undefined, undefined, 1000 * NANO);
    quota.down = true;
    let spent = 1000 * NANO;
    let err: GatewayError | undefined;
    for (let i = 0; i < 2000 && err === undefined; i++) {
      try {
        const r = await m.reserve('interactive', 1000, 1000 * NANO);
        m.settle(r, 1000, 'm', undefined, undefined, undefined, 1000 * NANO);
        spent += 1000 * NANO;
      } catch (e) {
        err = e as GatewayError;
      }
    }
    expect(err?.code).toBe('llmgw_quota_unavailable');
    expect(err?.status).toBe(503);
    expect(err?.message).toContain('its share of the dollar budget ($');
    // Its lease and its fail-open share: at most half of the budget (and one request's estimate error).
    expect(spent).toBeLessThanOrEqual(usd(0.5) + 1000 * NANO);
    expect(spent).toBeGreaterThan(usd(0.25));
    expect(costNano(quota)).toBe(0);
    quota.down = false;
    clock.advance(2001);
    await vi.waitFor(() => expect(costNano(quota)).toBe(spent));
    await m.close();
    expect(costNano(quota)).toBe(spent);
  });
});
