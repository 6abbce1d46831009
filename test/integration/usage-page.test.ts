// The usage page in real headless Chromium (Debian's `chromium`, driven by playwright-core) against the real
// quota service parts: a SQLite store, the allocator and the sidecar-facing gRPC handlers fed with usage,
// the page mounted on a real status listener behind a JWKS verifier and an admin token.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../common/clock.js';
import { closeServer, listen } from '../../common/http/listen.js';
import { createStatusServer } from '../../common/http/status-server.js';
import { AdminTokens } from '../../quota-service/auth/admin-tokens.js';
import { Authenticator } from '../../quota-service/auth/authenticator.js';
import { createJwksVerifier } from '../../quota-service/auth/jwks-verifier.js';
import { allocatorUsageView } from '../../quota-service/ui/allocator-usage-view.js';
import { usagePageMount } from '../../quota-service/ui/usage-page.js';
import type { UsageView } from '../../quota-service/ui/usage-view.js';
import { windowAt } from '../../quota-service/windows.js';
import { inProcessQuota, type InProcessQuota } from '../helpers/in-process-quota.js';
import { createTokenIssuer, type TokenIssuer } from '../helpers/sa-tokens.js';
import { chartPixels, chromiumPath, legend, rows } from '../helpers/usage-page-browser.js';

const ADMIN = 'usage-page-admin-token-0123456789';
const HOSTILE_TAG = '<img src=x onerror=alert(1)>';
const HOSTILE_MODEL = '<script>alert(2)</script>';
const HOUR = 3_600_000;
/** The first series' color in usage-page.js (#2563eb). */

const dir = mkdtempSync(join(tmpdir(), 'llmgw-usage-page-'));
/** Screenshots of the page, kept after the run ($LLMGW_TEST_ARTIFACTS, else a folder in the temp dir). */
const artifacts = process.env.LLMGW_TEST_ARTIFACTS ?? join(tmpdir(), 'llmgw-test-artifacts');
const servers: Server[] = [];
let quota: InProcessQuota;
let issuer: TokenIssuer;
let auth: Authenticator;
let browser: Browser;
let base: string;
let viewerToken: string;
let alphaLease: string;
/** Usage fed in, with when it started. */
const fed: { namespace: string; tokens: number; at: number }[] = [];

type Rpc = (req: Record<string, unknown>) => Promise<Record<string, unknown>>;
const rpc = (name: 'acquire' | 'renew'): Rpc => (req) => (quota.rpc[name] as unknown as (r: unknown, t: number) => Promise<Record<string, unknown>>)(req, 5000);

async function mount(view: UsageView): Promise<string> {
  const server = createStatusServer({ registry: quota.metrics.registry, ready: () => true, mount: usagePageMount({ view, auth, clock: systemClock }) });
  servers.push(server);
  const at = await listen(server, { host: '127.0.0.1', port: 0 });
  return `http://127.0.0.1:${at.port}`;
}

beforeAll(async () => {
  quota = inProcessQuota(systemClock, { dbPath: join(dir, 'quota.db'), leaseTtlMs: 600_000 });
  issuer = createTokenIssuer();
  issuer.writeJwks(join(dir, 'jwks.json'));
  auth = new Authenticator({
    mode: 'jwks',
    verifier: createJwksVerifier({ jwks: join(dir, 'jwks.json'), issuer: issuer.issuer, audience: 'llm-gateway' }),
    adminTokens: new AdminTokens({ tokens: [ADMIN] }),
    viewerSubjects: ['ops/dashboard'],
  });
  viewerToken = await issuer.mint({ namespace: 'ops', serviceAccount: 'dashboard' });

  const a = quota.allocator;
  a.setTeam('payments', ['alpha']);
  a.setBudget('namespace/alpha', 'day', 100_000);
  a.setBudget('team/payments', 'hour', 50_000);
  // Hour and day windows: a minute one could turn over between what the page shows and what the test reads.
  a.setBudget('namespace/beta', 'hour', 1_000);
  const now = Date.now();
  fed.push({ namespace: 'alpha', tokens: 1_200, at: now }, { namespace: 'alpha', tokens: 800, at: now - HOUR }, { namespace: 'beta', tokens: 300, at: now });
  const alpha = await rpc('acquire')({
    identity: { namespace: 'alpha', service: 'web', team: '', pod: 'alpha-1' },
    priority: 'PRIORITY_INTERACTIVE',
    incarnation: 'alpha-inc',
    needTokens: 100,
    demandTokensPerSecond: 20,
    requestTokens: 100,
    reports: [
      { sequence: 1, tokens: 1_200, startedAtMs: now, tags: { feature: HOSTILE_TAG } },
      { sequence: 2, tokens: 800, startedAtMs: now - HOUR, tags: { feature: 'search' } },
    ],
  });
  alphaLease = String(alpha.leaseId);
  await rpc('acquire')({
    identity: { namespace: 'beta', service: 'worker', team: '', pod: 'beta-1' },
    priority: 'PRIORITY_BACKGROUND',
    incarnation: 'beta-inc',
    needTokens: 10,
    demandTokensPerSecond: 5,
    requestTokens: 10,
    reports: [{ sequence: 1, tokens: 300, startedAtMs: now, tags: { feature: 'search' } }],
  });
  // A batch need larger than beta's whole hourly budget: refused.
  const refused = await rpc('acquire')({
    identity: { namespace: 'beta', service: 'worker', team: '', pod: 'beta-2' },
    priority: 'PRIORITY_BATCH',
    incarnation: 'beta-inc-2',
    needTokens: 5_000,
    demandTokensPerSecond: 5,
    requestTokens: 5_000,
    reports: [],
  });
  expect(refused.refusal).toBeTruthy();

  base = await mount(allocatorUsageView({ allocator: quota.allocator, store: quota.store, clock: systemClock, metrics: quota.metrics }));
  browser = await chromium.launch({ executablePath: chromiumPath(), headless: true });
  mkdirSync(artifacts, { recursive: true });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  for (const s of servers) await closeServer(s);
  auth?.close();
  quota?.store.close();
  rmSync(dir, { recursive: true, force: true });
});

/** What the page's script did that it must not: dialogs, errors, CSP refusals. */
interface Watch {
  dialogs: string[];
  errors: string[];
}

async function openPage(url: string, viewport: { width: number; height: number }): Promise<{ page: Page; watch: Watch }> {
  const page = await browser.newPage({ viewport });
  const watch: Watch = { dialogs: [], errors: [] };
  page.on('dialog', (d) => {
    watch.dialogs.push(d.message());
    void d.dismiss();
  });
  page.on('pageerror', (e) => watch.errors.push(e.message));
  page.on('console', (m) => {
    // The API's refusals before a credential is given are expected; CSP violations and script errors are not.
    if (m.type() === 'error' && !/^Failed to load resource: the server responded with a status of 40[13]/.test(m.text())) watch.errors.push(m.text());
  });
  await page.goto(url);
  return { page, watch };
}

async function signIn(page: Page, token: string): Promise<void> {
  await page.locator('#login').waitFor({ state: 'visible' });
  await page.fill('#login-token', token);
  await page.click('#login-form button[type=submit]');
}

/** A table row as the callbacks see it (this project compiles without the DOM library). */
const fmt = (n: number): string => n.toLocaleString('en-US');

const noHorizontalOverflow = (page: Page): Promise<{ scroll: number; inner: number }> =>
  page.evaluate('({ scroll: document.documentElement.scrollWidth, inner: window.innerWidth })');

describe('usage page in Chromium', () => {
  it('serves the shell to anyone and refuses the API without a viewer credential', async () => {
    expect((await fetch(`${base}/ui`)).status).toBe(200);
    expect((await fetch(`${base}/ui/api/summary`)).status).toBe(401);
    expect((await fetch(`${base}/ui/api/summary`, { headers: { authorization: 'Bearer wrong-token-wrong-token' } })).status).toBe(401);
    const stranger = await issuer.mint({ namespace: 'alpha', serviceAccount: 'web' });
    expect((await fetch(`${base}/ui/api/summary`, { headers: { authorization: `Bearer ${stranger}` } })).status).toBe(403);
    expect((await fetch(`${base}/ui/api/summary`, { headers: { authorization: `Bearer ${viewerToken}` } })).status).toBe(200);
    expect((await fetch(`${base}/ui/api/summary`, { headers: { authorization: `Bearer ${ADMIN}` } })).status).toBe(200);
  });

  it('asks for a credential, then shows budgets, charts, leases and refusals as the service holds them, tenant text as text', async () => {
    const { page, watch } = await openPage(`${base}/ui`, { width: 1280, height: 900 });
    await signIn(page, 'wrong-token-wrong-token');
    await expect.poll(() => page.textContent('#login-reason')).toContain('refused');
    expect(await page.isVisible('#content')).toBe(false);
    await signIn(page, viewerToken);
    await page.waitForSelector('body[data-updated]');
    expect(await page.evaluate("sessionStorage.getItem('llmgw.ui.token')")).toBe(viewerToken);

    // Budgets: the numbers the allocator holds.
    const now = Date.now();
    const usedIn = (ns: string, w: 'day' | 'hour') => fed.filter((f) => f.namespace === ns && windowAt(w, f.at).startMs === windowAt(w, now).startMs).reduce((n, f) => n + f.tokens, 0);
    const views = quota.allocator.listBudgets();
    const budgets = await rows(page, 'budgets');
    for (const [scope, window, limit, used] of [
      ['namespace/alpha', 'day', 100_000, usedIn('alpha', 'day')],
      ['team/payments', 'hour', 50_000, usedIn('alpha', 'hour')],
      ['namespace/beta', 'hour', 1_000, usedIn('beta', 'hour')],
    ] as const) {
      const v = views.find((b) => b.scope === scope && b.window === window)!;
      expect(v.used).toBe(used);
      const row = budgets.find((r) => r[0] === scope);
      expect(row, scope).toBeDefined();
      expect(row!.slice(1, 6)).toEqual([window, fmt(limit), fmt(used), fmt(v.outstanding), fmt(Math.max(0, limit - used - v.outstanding))]);
      // Dollars as the service priced the reports (they name no model: the default price, never free).
      const costUsd = quota.store.totals(scope, window, v.windowStartMs).costNano / 1e9;
      expect(costUsd).toBeGreaterThan(0);
      expect(row![7]).toBe(`$${costUsd >= 1 ? costUsd.toFixed(2) : Number(costUsd.toPrecision(3)).toString()}`);
    }

    // Live leases per sidecar, and the refused batch need.
    const leases = await rows(page, 'leases');
    expect(leases.map((r) => [r[0], r[1], r[2], r[3]]).sort()).toEqual([
      ['alpha', 'web', 'alpha-1', 'interactive'],
      ['beta', 'worker', 'beta-1', 'background'],
      ['beta', 'worker', 'beta-2', 'batch'],
    ]);
    const alphaHeld = quota.store.leases().find((l) => l.pod === 'alpha-1')!.outstanding;
    expect(alphaHeld).toBeGreaterThan(0);
    expect(leases.find((r) => r[2] === 'alpha-1')![4]).toBe(fmt(alphaHeld));
    expect(await rows(page, 'refusals-priority')).toEqual([
      ['interactive', '0'],
      ['background', '0'],
      ['batch', '1'],
    ]);
    // This view was given no price table; per-model usage it has (the reports named none: one series).
    expect(await rows(page, 'prices')).toEqual([['—']]);
    expect(await page.$('figure.chart[data-group="model"] canvas')).not.toBeNull();

    // Charts: teams, namespaces, and the values of the tag key typed in; each drew its data.
    await page.fill('#tag-key', 'feature');
    await page.press('#tag-key', 'Enter');
    await expect.poll(() => page.textContent('figure.chart[data-group="tag"] .note')).toContain('feature');
    expect(await legend(page, 'team')).toEqual(['payments']);
    expect(await legend(page, 'namespace')).toEqual(['alpha', 'beta']);
    expect(await legend(page, 'tag')).toEqual([HOSTILE_TAG, 'search']);
    for (const group of ['team', 'namespace', 'tag']) {
      const px = await chartPixels(page, group);
      expect(px, group).not.toBeNull();
      expect(px!.width, group).toBeGreaterThan(300);
      expect(px!.height, group).toBeGreaterThan(100);
      expect(px!.upper, `${group}: the first series drawn above its baseline`).toBeGreaterThan(10);
    }

    // The hostile tag value is text: nothing ran, no element was made of it.
    expect(await page.$$eval('img', (imgs) => imgs.length)).toBe(0);
    expect(await page.textContent('figure.chart[data-group="tag"] .u-legend')).toContain(HOSTILE_TAG);
    await page.screenshot({ path: join(artifacts, 'usage-page-laptop.png'), fullPage: true });
    await page.waitForTimeout(500);
    expect(watch.dialogs).toEqual([]);
    expect(watch.errors).toEqual([]);

    // It refreshes itself: usage reported now shows up without a reload.
    const before = quota.allocator.listBudgets().find((b) => b.scope === 'namespace/alpha')!;
    await rpc('renew')({ leaseId: alphaLease, needTokens: 0, demandTokensPerSecond: 20, reports: [{ sequence: 3, tokens: 500, startedAtMs: Date.now(), tags: {} }], unusedTokens: 0, requestTokens: 100, inflightTokens: 0 });
    const after = quota.allocator.listBudgets().find((b) => b.scope === 'namespace/alpha')!;
    expect(after.used).toBe(before.used + 500);
    const shows = async (): Promise<boolean> => (await rows(page, 'budgets')).some((r) => r[0] === 'namespace/alpha' && r[3] === fmt(after.used));
    await expect.poll(shows, { timeout: 12_000, interval: 250 }).toBe(true);

    // A phone: nothing overflows sideways, the charts still draw, the credential is kept for the tab.
    await page.setViewportSize({ width: 390, height: 844 });
    await page.reload();
    await page.waitForSelector('body[data-updated]');
    expect(await page.isVisible('#login')).toBe(false);
    await page.waitForSelector('figure.chart[data-group="team"] canvas');
    const o = await noHorizontalOverflow(page);
    expect(o.scroll).toBeLessThanOrEqual(o.inner);
    for (const group of ['team', 'namespace', 'tag']) {
      const px = await chartPixels(page, group);
      expect(px, group).not.toBeNull();
      expect(px!.width, group).toBeGreaterThan(200);
      expect(px!.width, group).toBeLessThanOrEqual(390);
      expect(px!.height, group).toBeGreaterThan(100);
      expect(px!.upper, `${group}: the first series drawn above its baseline`).toBeGreaterThan(10);
    }
    expect(await page.inputValue('#tag-key')).toBe('feature');
    // Tables are cards of labelled lines here: every budget's numbers are on screen, none beyond its right edge.
    const cells = await page.$$eval('#budgets tbody td', (tds) => tds.map((td) => ({ label: td.getAttribute('data-label'), right: td.getBoundingClientRect().right })));
    expect(cells.map((c) => c.label).slice(0, 9)).toEqual(['Scope', 'Window', 'Limit', 'Used', 'Reserved', 'Remaining', 'Use', 'Spent (USD)', 'Resets']);
    for (const c of cells) expect(c.right).toBeLessThanOrEqual(390);
    await page.screenshot({ path: join(artifacts, 'usage-page-phone.png'), fullPage: true });
    expect(watch.dialogs).toEqual([]);
    expect(watch.errors).toEqual([]);
    await page.close();
  }, 60_000);

  it('shows per-model spend and the price table when the service keeps them, model names as text', async () => {
    const real = allocatorUsageView({ allocator: quota.allocator, store: quota.store, clock: systemClock, metrics: quota.metrics });
    const now = Date.now();
    const hour = windowAt('hour', now).startMs;
    const view: UsageView = {
      ...real,
      modelHistory: () => [
        { label: HOSTILE_MODEL, startMs: hour, tokens: 2_000, costUsd: 1.25 },
        { label: 'gpt-4o', startMs: hour - HOUR, tokens: 500, costUsd: 0.5 },
      ],
      prices: () => ({
        asOf: '2026-12-01',
        source: 'test',
        rows: [
          { provider: 'openai', model: 'gpt-4o', input: 2.5, cachedInput: 1.25, output: 10 },
          { provider: 'openai-compatible', model: HOSTILE_MODEL, input: 0.1, output: 0.2 },
        ],
      }),
    };
    const url = await mount(view);
    const { page, watch } = await openPage(`${url}/ui`, { width: 1280, height: 900 });
    await signIn(page, ADMIN);
    await page.waitForSelector('body[data-updated]');
    expect(await legend(page, 'model')).toEqual([HOSTILE_MODEL, 'gpt-4o']);
    expect((await chartPixels(page, 'model'))!.upper).toBeGreaterThan(10);
    expect(await rows(page, 'prices')).toEqual([
      ['openai', 'gpt-4o', '$2.5', '$1.25', '—', '$10', '—'],
      ['openai-compatible', HOSTILE_MODEL, '$0.1', '—', '—', '$0.2', '—'],
    ]);
    expect(await page.textContent('#prices-meta')).toBe('as of 2026-12-01 · source: test');
    // In dollars: the charts draw from the costs the service kept.
    await page.selectOption('#unit', 'usd');
    expect((await chartPixels(page, 'model'))!.upper).toBeGreaterThan(10);
    // The teams' spend is priced by the service too: that chart draws in dollars as well.
    expect(await legend(page, 'team')).toEqual(['payments']);
    expect((await chartPixels(page, 'team'))!.upper).toBeGreaterThan(10);
    expect(await page.$$eval('script', (s) => s.filter((x) => x.textContent!.includes('alert')).length)).toBe(0);
    expect(watch.dialogs).toEqual([]);
    expect(watch.errors).toEqual([]);
    await page.close();
  }, 60_000);
});
