import type { Server } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { closeServer, listen } from '../../../../common/http/listen.js';
import { createStatusServer } from '../../../../common/http/status-server.js';
import { Registry } from '../../../../common/metrics/registry.js';
import { AdminTokens } from '../../../../quota-service/auth/admin-tokens.js';
import { Authenticator } from '../../../../quota-service/auth/authenticator.js';
import { TokenRejected, type TokenVerifier } from '../../../../quota-service/auth/token-verifier.js';
import { PAGE_CSP, usagePageMount } from '../../../../quota-service/ui/usage-page.js';
import type { UsageView } from '../../../../quota-service/ui/usage-view.js';
import { fakeClock } from '../../../helpers/fake-clock.js';

const ADMIN = 'usage-page-admin-token-0001';
const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await closeServer(s);
});

const view: UsageView = {
  budgets: () => [{ scope: 'namespace/a', window: 'day', limit: 10, used: 1, reserved: 2, remaining: 7, windowStartMs: 0, windowEndMs: 1 }],
  leases: () => [],
  scopes: () => [],
  history: () => [],
  tagHistory: () => [],
};

/** Verifies "sa.<ns>.<name>" as that service account; anything else is rejected. */
const fakeVerifier: TokenVerifier = {
  verify: async (token) => {
    const m = /^sa\.([a-z]+)\.([a-z]+)$/.exec(token);
    if (m === null) throw new TokenRejected('bad-signature', 'not signed by the issuer');
    return { namespace: m[1]!, serviceAccount: m[2]!, pod: '', subject: `${m[1]}/${m[2]}`, expiresAtMs: Date.now() + 60_000 };
  },
  close: () => undefined,
};

async function start(auth: Authenticator, v: UsageView = view, clock = fakeClock()): Promise<string> {
  const registry = new Registry();
  const server = createStatusServer({ registry, ready: () => true, mount: usagePageMount({ view: v, auth, clock }) });
  servers.push(server);
  const at = await listen(server, { host: '127.0.0.1', port: 0 });
  return `http://127.0.0.1:${at.port}`;
}

const protectedAuth = () =>
  new Authenticator({ mode: 'jwks', verifier: fakeVerifier, adminTokens: new AdminTokens({ tokens: [ADMIN] }), viewerSubjects: ['ops/dashboard'], adminSubjects: ['ops/bot'] });
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

describe('usage page routes', () => {
  it('serves the shell without a credential, with a strict CSP and no data in it', async () => {
    const base = await start(protectedAuth());
    const res = await fetch(`${base}/ui`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(res.headers.get('content-security-policy')).toBe(PAGE_CSP);
    expect(PAGE_CSP).toContain("default-src 'self'");
    expect(PAGE_CSP).toContain("frame-ancestors 'none'");
    expect(PAGE_CSP).not.toContain('unsafe-inline');
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    const html = await res.text();
    expect(html).not.toContain('namespace/a');
    expect(html).not.toMatch(/<script>|<script [^>]*>[^<]|\son[a-z]+=/i);
    for (const file of ['uplot.js', 'uplot.css', 'usage-tables.js', 'usage-charts.js', 'usage-page.js', 'usage-page.css']) {
      const a = await fetch(`${base}/ui/static/${file}`);
      expect(a.status, file).toBe(200);
      expect(a.headers.get('x-content-type-options')).toBe('nosniff');
      expect((await a.arrayBuffer()).byteLength).toBeGreaterThan(1000);
    }
    // Only the page's own files, by name: nothing else on disk, nothing from the object prototype.
    for (const name of ['nope.js', '..%2F..%2Fpackage.json', '..%2Fstatic-assets.ts', 'constructor', '__proto__']) {
      expect((await fetch(`${base}/ui/static/${name}`)).status, name).toBe(404);
    }
  });

  it('answers an unchanged file with 304', async () => {
    const base = await start(protectedAuth());
    const first = await fetch(`${base}/ui/static/uplot.js`);
    const etag = first.headers.get('etag')!;
    expect(etag).toMatch(/^".+"$/);
    expect((await fetch(`${base}/ui/static/uplot.js`, { headers: { 'if-none-match': etag } })).status).toBe(304);
  });

  it('refuses the API without a credential (401) and with a wrong one (401), and a service account that is no viewer (403)', async () => {
    const base = await start(protectedAuth());
    const none = await fetch(`${base}/ui/api/summary`);
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toBe('Bearer');
    expect(((await none.json()) as { error: string }).error).toMatch(/operator credential/);
    expect((await fetch(`${base}/ui/api/summary`, { headers: bearer('not-the-admin-token-at-all') })).status).toBe(401);
    expect((await fetch(`${base}/ui/api/summary`, { headers: bearer('sa.x.y.z') })).status).toBe(401);
    expect((await fetch(`${base}/ui/api/summary`, { headers: { authorization: 'Basic abc' } })).status).toBe(401);
    const stranger = await fetch(`${base}/ui/api/series?group=team`, { headers: bearer('sa.tenant.app') });
    expect(stranger.status).toBe(403);
    expect(((await stranger.json()) as { error: string }).error).toMatch(/not an operator/);
  });

  it('lets the admin token, viewers and admin subjects read, with answers nobody caches', async () => {
    const base = await start(protectedAuth());
    for (const token of [ADMIN, 'sa.ops.dashboard', 'sa.ops.bot']) {
      const res = await fetch(`${base}/ui/api/summary`, { headers: bearer(token) });
      expect(res.status, token).toBe(200);
      expect(res.headers.get('cache-control')).toBe('no-store');
      expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8');
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      expect(res.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
      const body = (await res.json()) as { budgets: { rows: unknown[] } };
      expect(body.budgets.rows).toHaveLength(1);
    }
  });

  it('is open like the admin API with --auth none and no operator credential, and closed with an admin token', async () => {
    const open = await start(new Authenticator({ mode: 'none' }));
    expect((await fetch(`${open}/ui/api/summary`)).status).toBe(200);
    const closed = await start(new Authenticator({ mode: 'none', adminTokens: new AdminTokens({ tokens: [ADMIN] }) }));
    expect((await fetch(`${closed}/ui/api/summary`)).status).toBe(401);
    expect((await fetch(`${closed}/ui/api/summary`, { headers: bearer(ADMIN) })).status).toBe(200);
  });

  it('answers bad queries with 400, unknown API paths with 404 and writes with 405', async () => {
    const base = await start(new Authenticator({ mode: 'none' }));
    expect((await fetch(`${base}/ui/api/series?group=tag&tag=%3Cb%3E`)).status).toBe(400);
    expect((await fetch(`${base}/ui/api/nothing`)).status).toBe(404);
    expect((await fetch(`${base}/ui/api/summary`, { method: 'POST' })).status).toBe(405);
    expect((await fetch(`${base}/uix`)).status).toBe(404);
    const slash = await fetch(`${base}/ui/`, { redirect: 'manual' });
    expect(slash.status).toBe(308);
    expect(slash.headers.get('location')).toBe('../ui');
  });

  it('keeps /metrics and the health paths as they were beside mounted routes', async () => {
    const base = await start(new Authenticator({ mode: 'none' }));
    expect((await fetch(`${base}/healthz/live`)).status).toBe(200);
    expect((await fetch(`${base}/healthz/ready`)).status).toBe(200);
    expect((await fetch(`${base}/metrics`)).status).toBe(200);
    expect((await fetch(`${base}/metrics`, { method: 'POST' })).status).toBe(405);
    expect((await fetch(`${base}/other`)).status).toBe(404);
  });

  it('reads the store once per answer and period for every reader, and still checks each reader', async () => {
    let reads = 0;
    const counting: UsageView = {
      ...view,
      budgets: () => {
        reads++;
        return view.budgets();
      },
    };
    const clock = fakeClock();
    const base = await start(protectedAuth(), counting, clock);
    for (let i = 0; i < 3; i++) expect((await fetch(`${base}/ui/api/summary`, { headers: bearer(ADMIN) })).status).toBe(200);
    expect((await fetch(`${base}/ui/api/summary`)).status).toBe(401);
    expect(reads).toBe(1);
    clock.advance(4_000);
    expect((await fetch(`${base}/ui/api/summary`, { headers: bearer('sa.ops.dashboard') })).status).toBe(200);
    expect(reads).toBe(2);
  });

  it('answers 500 when reading the usage fails, and the listener keeps serving', async () => {
    const broken: UsageView = {
      ...view,
      budgets: () => {
        throw new Error('database is locked');
      },
    };
    const base = await start(new Authenticator({ mode: 'none' }), broken);
    const res = await fetch(`${base}/ui/api/summary`);
    expect(res.status).toBe(500);
    expect(await res.text()).not.toContain('database is locked');
    expect((await fetch(`${base}/ui/api/series?group=team`)).status).toBe(200);
    expect((await fetch(`${base}/healthz/live`)).status).toBe(200);
  });
});
