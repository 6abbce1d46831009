// The usage page over PostgreSQL: a real server, two quota-service replicas in this process sharing it. Usage,
// budgets, a team and leases go in through replica A; the page's API and the page itself (real headless
// Chromium, Debian's `chromium` driven by playwright-core) are read from replica B, and must show exactly
// what went in.
import { chromium, type Browser } from 'playwright-core';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_FLOORS, type UsageReport } from '../../quota-service/allocator.js';
import { AdminTokens } from '../../quota-service/auth/admin-tokens.js';
import { startQuotaService, type QuotaService } from '../../quota-service/quota-service.js';
import type { Identity } from '../../quota-service/scopes.js';
import type { SeriesAnswer, Summary } from '../../quota-service/ui/usage-api.js';
import { windowAt, windowBefore, type WindowName } from '../../quota-service/windows.js';
import { startPostgres, type TestPostgres } from '../helpers/postgres.js';
import { chartPixels, chromiumPath, legend, rows } from '../helpers/usage-page-browser.js';

const ADMIN = 'usage-page-pg-admin-token-0123456789';
const HOUR = 3_600_000;
/** The first series' color in usage-page.js (#2563eb). */
const silent = pino({ level: 'silent' });


let pg: TestPostgres;
let a: QuotaService;
let b: QuotaService;
let browser: Browser;
/** Replica B's status listener, where the page is read. */
let base: string;
const stopping: (() => Promise<void>)[] = [];
/** Usage fed in through replica A: namespace, service, tokens, when it started, its tag and model. */
const fed: { namespace: string; service: string; tokens: number; at: number; feature: string; model: string }[] = [];
/** Each sidecar's lease and what it holds, as replica A granted it. */
const leases = new Map<string, { leaseId: string; tokens: number }>();
const sequences = new Map<string, number>();

const identityOf = (namespace: string, service: string, pod: string): Identity => ({ namespace, service, pod });
function reports(incarnation: string, items: { namespace: string; service: string; tokens: number; at: number; feature: string; model: string }[]): UsageReport[] {
  return items.map((f) => {
    fed.push(f);
    const sequence = (sequences.get(incarnation) ?? 0) + 1;
    sequences.set(incarnation, sequence);
    return { sequence, tokens: f.tokens, startedAtMs: f.at, tags: { feature: f.feature }, providerType: 'openai', model: f.model };
  });
}

/** Tokens fed for `ns` (every namespace when undefined) in the `window` window holding `at`, optionally of one tag value or model. */
function fedIn(window: WindowName, at: number, which: { ns?: string; feature?: string; model?: string } = {}): number {
  const start = windowAt(window, at).startMs;
  return fed
    .filter((f) => (which.ns === undefined || f.namespace === which.ns) && (which.feature === undefined || f.feature === which.feature) && (which.model === undefined || f.model === which.model))
    .filter((f) => windowAt(window, f.at).startMs === start)
    .reduce((n, f) => n + f.tokens, 0);
}

async function api<T>(path: string, token = ADMIN): Promise<T> {
  const res = await fetch(`${base}/ui/api/${path}`, { headers: { authorization: `Bearer ${token}` } });
  expect(res.status, path).toBe(200);
  return (await res.json()) as T;
}

beforeAll(async () => {
  pg = await startPostgres();
  const storeUrl = await pg.createDatabase();
  const replica = async (): Promise<QuotaService> => {
    const q = await startQuotaService({
      listen: { host: '127.0.0.1', port: 0 },
      statusListen: { host: '127.0.0.1', port: 0 },
      dbPath: '/nonexistent/not-used.db',
      storeUrl,
      logger: silent,
      leaseTtlMs: 600_000,
      auth: { mode: 'none', adminTokens: new AdminTokens({ tokens: [ADMIN] }) },
    });
    stopping.push(() => q.stop());
    return q;
  };
  a = await replica();
  b = await replica();
  base = `http://127.0.0.1:${b.statusAddress.port}`;

  await a.allocator.setTeam('payments', ['alpha']);
  await a.allocator.setBudget('namespace/alpha', 'day', 100_000);
  await a.allocator.setBudget('team/payments', 'hour', 50_000);
  // Hour and day windows: a minute one could turn over between what the page shows and what the test reads.
  await a.allocator.setBudget('namespace/beta', 'hour', 1_000);
  await a.allocator.setBudget('namespace/gamma', 'day', 2_000_000_000, DEFAULT_FLOORS, 'usd');
  const now = Date.now();
  const alpha = await a.allocator.acquire({
    identity: identityOf('alpha', 'web', 'alpha-1'),
    owner: '',
    priority: 'interactive',
    incarnation: 'alpha-inc',
    need: 100,
    demand: 20,
    reports: reports('alpha-inc', [
      { namespace: 'alpha', service: 'web', tokens: 1_200, at: now, feature: 'checkout', model: 'gpt-5-mini' },
      { namespace: 'alpha', service: 'web', tokens: 800, at: now - HOUR, feature: 'search', model: 'gpt-4.1-nano' },
    ]),
  });
  const beta = await a.allocator.acquire({
    identity: identityOf('beta', 'worker', 'beta-1'),
    owner: '',
    priority: 'background',
    incarnation: 'beta-inc',
    need: 10,
    demand: 5,
    reports: reports('beta-inc', [{ namespace: 'beta', service: 'worker', tokens: 300, at: now, feature: 'search', model: 'gpt-4.1-nano' }]),
  });
  // More of alpha's usage on its lease's renewal; gamma's with no lease at all.
  const renewed = await a.allocator.renew({
    leaseId: alpha.leaseId,
    owner: '',
    need: 0,
    demand: 20,
    unused: 0,
    reports: reports('alpha-inc', [{ namespace: 'alpha', service: 'web', tokens: 400, at: now, feature: 'checkout', model: 'gpt-5-mini' }]),
  });
  expect(renewed.acked).toBe(3);
  expect(await a.allocator.report(identityOf('gamma', 'batch', 'gamma-1'), '', 'gamma-inc', reports('gamma-inc', [{ namespace: 'gamma', service: 'batch', tokens: 5_000, at: now, feature: 'search', model: 'gpt-5-mini' }]))).toBe(1);
  leases.set('alpha-1', { leaseId: alpha.leaseId, tokens: renewed.leaseTokens });
  leases.set('beta-1', { leaseId: beta.leaseId, tokens: beta.leaseTokens });
  expect(renewed.leaseTokens).toBeGreaterThan(0);
  expect(beta.leaseTokens).toBeGreaterThan(0);
  browser = await chromium.launch({ executablePath: chromiumPath(), headless: true });
}, 90_000);

afterAll(async () => {
  await browser?.close();
  for (const s of stopping.splice(0).reverse()) await s();
  await pg?.stop();
});

/** What replica A says a window of `scope` cost, in USD. */
async function costUsd(scope: string, window: WindowName, at: number): Promise<number> {
  const start = windowAt(window, at).startMs;
  const windows = await a.allocator.usage(scope, window, 1, undefined, { sinceMs: start });
  return (windows.find((w) => w.startMs === start)?.costNano ?? 0) / 1e9;
}

describe('usage page over PostgreSQL, read from another replica than the one written to', () => {
  it('answers the summary with the budgets, leases and prices every replica holds', async () => {
    expect((await fetch(`${base}/ui`)).status).toBe(200);
    expect((await fetch(`${base}/ui/api/summary`)).status).toBe(401);
    const s = await api<Summary>('summary');
    const now = Date.now();
    const rows = new Map(s.budgets.rows.map((r) => [`${r.scope} ${r.window} ${r.unit}`, r]));
    const alphaHeld = leases.get('alpha-1')!.tokens;
    const betaHeld = leases.get('beta-1')!.tokens;
    for (const [scope, window, limit, used, reserved] of [
      ['namespace/alpha', 'day', 100_000, fedIn('day', now, { ns: 'alpha' }), alphaHeld],
      ['team/payments', 'hour', 50_000, fedIn('hour', now, { ns: 'alpha' }), alphaHeld],
      ['namespace/beta', 'hour', 1_000, fedIn('hour', now, { ns: 'beta' }), betaHeld],
    ] as const) {
      const row = rows.get(`${scope} ${window} tokens`);
      expect(row, scope).toBeDefined();
      expect(row).toMatchObject({ limit, used, reserved, remaining: Math.max(0, limit - used - reserved) });
      expect(row!.usedUsd).toBeCloseTo(await costUsd(scope, window, now), 9);
      expect(row!.usedUsd).toBeGreaterThan(0);
      expect(row!.windowStartMs).toBe(windowAt(window, now).startMs);
    }
    // A dollar budget: kept in nano-USD, answered in USD.
    const gammaCost = await costUsd('namespace/gamma', 'day', now);
    expect(gammaCost).toBeGreaterThan(0);
    const gamma = rows.get('namespace/gamma day usd')!;
    expect(gamma.limit).toBe(2);
    expect(gamma.used).toBeCloseTo(gammaCost, 9);
    expect(gamma.remaining).toBeCloseTo(2 - gammaCost, 9);
    expect(s.budgets.rows).toHaveLength(4);

    expect(s.leases.rows.map((l) => [l.namespace, l.service, l.pod, l.priority, l.tokensHeld]).sort()).toEqual([
      ['alpha', 'web', 'alpha-1', 'interactive', alphaHeld],
      ['beta', 'worker', 'beta-1', 'background', betaHeld],
    ]);
    // This replica's refusal counts (none), and the price table it charges by.
    expect(s.refusals?.byPriority.map((p) => p.count)).toEqual([0, 0, 0]);
    const priced = b.prices.current.index.table.models.openai?.['gpt-5-mini'];
    expect(priced).toBeDefined();
    expect(s.prices?.rows.find((r) => r.provider === 'openai' && r.model === 'gpt-5-mini')).toMatchObject({ input: priced!.input, output: priced!.output });
  });

  it('answers every chart with the usage fed in, per team, namespace, service, tag value and model', async () => {
    const now = Date.now();
    const hours = Array.from({ length: 24 }, (_, i) => windowBefore('hour', now, 23 - i).startMs);
    /** A series' tokens per hour, as fed. */
    const expected = (which: { ns?: string; feature?: string; model?: string }) => hours.map((h) => fedIn('hour', h, which));
    const series = (q: string) => api<SeriesAnswer>(`series?${q}&range=24h`);

    const byNamespace = await series('group=namespace');
    expect(byNamespace.startsMs).toEqual(hours);
    expect(byNamespace.scopesLeftOut).toBe(0);
    expect(byNamespace.series.map((x) => [x.label, x.tokens])).toEqual([
      ['gamma', expected({ ns: 'gamma' })],
      ['alpha', expected({ ns: 'alpha' })],
      ['beta', expected({ ns: 'beta' })],
    ]);
    // Dollars per window as replica A's usage query prices them.
    const alpha = byNamespace.series.find((x) => x.label === 'alpha')!;
    for (const i of [22, 23]) expect(alpha.costUsd![i]).toBeCloseTo(await costUsd('namespace/alpha', 'hour', hours[i]!), 9);
    expect(alpha.tokens[22]).toBe(800);

    expect((await series('group=team')).series.map((x) => [x.label, x.tokens])).toEqual([['payments', expected({ ns: 'alpha' })]]);
    // gamma's service holds no lease and no budget: not a scope the page finds.
    expect((await series('group=service')).series.map((x) => x.label)).toEqual(['alpha/service/web', 'beta/service/worker']);
    expect((await series('group=tag&tag=feature')).series.map((x) => [x.label, x.tokens])).toEqual([
      ['search', expected({ feature: 'search' })],
      ['checkout', expected({ feature: 'checkout' })],
    ]);
    const byModel = await series('group=model');
    expect(byModel.available).toBe(true);
    expect(byModel.series.map((x) => [x.label, x.tokens])).toEqual([
      ['gpt-5-mini', expected({ model: 'gpt-5-mini' })],
      ['gpt-4.1-nano', expected({ model: 'gpt-4.1-nano' })],
    ]);
    // Day windows too: everything fed falls in today's or yesterday's.
    const days = await api<SeriesAnswer>('series?group=namespace&range=30d');
    expect(days.startsMs.at(-1)).toBe(windowAt('day', now).startMs);
    expect(Object.fromEntries(days.series.map((x) => [x.label, x.tokens.reduce((n, t) => n + t, 0)]))).toEqual({ alpha: 2_400, beta: 300, gamma: 5_000 });
  });

  it('renders the budgets and draws every chart in Chromium, and shows usage another replica takes in without a reload', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => {
      if (m.type() === 'error' && !/^Failed to load resource: the server responded with a status of 401/.test(m.text())) errors.push(m.text());
    });
    await page.goto(`${base}/ui`);
    await page.locator('#login').waitFor({ state: 'visible' });
    await page.fill('#login-token', ADMIN);
    await page.click('#login-form button[type=submit]');
    await page.waitForSelector('body[data-updated]');

    const now = Date.now();
    const budgets = await rows(page, 'budgets');
    for (const [scope, window, limit, used, held] of [
      ['namespace/alpha', 'day', 100_000, fedIn('day', now, { ns: 'alpha' }), leases.get('alpha-1')!.tokens],
      ['team/payments', 'hour', 50_000, fedIn('hour', now, { ns: 'alpha' }), leases.get('alpha-1')!.tokens],
      ['namespace/beta', 'hour', 1_000, fedIn('hour', now, { ns: 'beta' }), leases.get('beta-1')!.tokens],
    ] as const) {
      const row = budgets.find((r) => r[0] === scope);
      expect(row, scope).toBeDefined();
      expect(row!.slice(1, 6)).toEqual([window, fmt(limit), fmt(used), fmt(held), fmt(Math.max(0, limit - used - held))]);
      expect(row![7]).toBe(usd(await costUsd(scope, window, now)));
    }
    const gamma = budgets.find((r) => r[0] === 'namespace/gamma')!;
    expect(gamma.slice(1, 4)).toEqual(['day (USD)', '$2.00', usd(await costUsd('namespace/gamma', 'day', now))]);
    expect((await rows(page, 'leases')).map((r) => [r[0], r[1], r[2], r[3], r[4]]).sort()).toEqual([
      ['alpha', 'web', 'alpha-1', 'interactive', fmt(leases.get('alpha-1')!.tokens)],
      ['beta', 'worker', 'beta-1', 'background', fmt(leases.get('beta-1')!.tokens)],
    ]);

    await page.fill('#tag-key', 'feature');
    await page.press('#tag-key', 'Enter');
    await expect.poll(() => page.textContent('figure.chart[data-group="tag"] .note')).toContain('feature');
    expect(await legend(page, 'team')).toEqual(['payments']);
    expect(await legend(page, 'namespace')).toEqual(['gamma', 'alpha', 'beta']);
    expect(await legend(page, 'model')).toEqual(['gpt-5-mini', 'gpt-4.1-nano']);
    expect(await legend(page, 'tag')).toEqual(['search', 'checkout']);
    for (const group of ['team', 'namespace', 'model', 'tag']) {
      const px = await chartPixels(page, group);
      expect(px, group).not.toBeNull();
      expect(px!.width, group).toBeGreaterThan(300);
      expect(px!.upper, `${group}: the first series drawn above its baseline`).toBeGreaterThan(10);
    }

    // Usage renewed at replica A shows on replica B's page by itself (answers are kept 4 s, the page asks every 5 s).
    const alphaLease = leases.get('alpha-1')!;
    const r = await a.allocator.renew({
      leaseId: alphaLease.leaseId,
      owner: '',
      need: 0,
      demand: 20,
      unused: 0,
      reports: reports('alpha-inc', [{ namespace: 'alpha', service: 'web', tokens: 500, at: Date.now(), feature: 'checkout', model: 'gpt-5-mini' }]),
    });
    alphaLease.tokens = r.leaseTokens;
    const used = fedIn('day', Date.now(), { ns: 'alpha' });
    const shows = async (): Promise<boolean> => (await rows(page, 'budgets')).some((row) => row[0] === 'namespace/alpha' && row[3] === fmt(used));
    await expect.poll(shows, { timeout: 15_000, interval: 250 }).toBe(true);
    expect(errors).toEqual([]);
    await page.close();
  }, 60_000);
});

const fmt = (n: number): string => n.toLocaleString('en-US');
/** Dollars as the page writes them. */
const usd = (v: number): string => (v === 0 ? '$0' : `$${v >= 1 ? v.toFixed(2) : Number(v.toPrecision(3)).toString()}`);

