// `llmgw quota-service migrate`: a SQLite quota file written by the real SqliteQuotaStore, moved by the built
// CLI into a real PostgreSQL, then read through both stores' own read methods, which must agree on every
// budget and aggregate. Also: a non-empty target refused and left alone, a difference caught and rolled
// back, a file written to during the copy, an unreachable target (its password never printed), bad flags.
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { asyncStore } from '../helpers/async-store.js';
import { compareSorted, formatDifference } from '../../quota-service/postgres/compare-rows.js';
import { copyFromSqlite } from '../../quota-service/postgres/copy-from-sqlite.js';
import { COPY_TABLES, type Row } from '../../quota-service/postgres/copy-tables.js';
import { PgQuotaStore } from '../../quota-service/postgres/pg-store.js';
import { redactUrl, scrubUrl } from '../../quota-service/postgres/redact-url.js';
import { MAX_MODELS_PER_WINDOW, OTHER_MODEL, type LeaseRow, type QuotaStore } from '../../quota-service/store-api.js';
import { SqliteQuotaStore } from '../../quota-service/store.js';
import { windowAt, windowBefore, type WindowName, type WindowSpan } from '../../quota-service/windows.js';
import { killAll, runCli } from '../helpers/cli.js';
import { postgresPerFile } from '../helpers/postgres-per-file.js';

const NOW = Date.UTC(2026, 10, 23, 10, 30, 0);
const HOUR = windowAt('hour', NOW);
const EARLIER_HOUR = windowBefore('hour', NOW, 3);
const DAY = windowAt('day', NOW);
const MONTH = windowAt('month', NOW);

const server = postgresPerFile();
let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'llmgw-migrate-'));
});
afterAll(() => {
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});
afterEach(() => killAll());

const lease = (id: string, expiresAtMs: number, usd: number): LeaseRow => ({
  id, namespace: 'a', service: 'api', team: 'core', pod: `pod-${id}`, priority: 1, incarnation: `inc-${id}`, outstanding: 300, demand: 12.5,
  requestTokens: 800.25, expiresAtMs, renewAtMs: expiresAtMs - 10_000, windows: JSON.stringify({ 'namespace/a|hour': HOUR.startMs }), owner: 'a/api',
  failOpen: 40, failOpenNext: 20, usd, outstandingNano: usd * 7_000_000_001, demandNano: usd * 1.5e6, requestNano: usd * 3.25e5,
  failOpenNano: usd * 9_000, failOpenNextNano: usd * 4_000, renewal: 7,
});

const windowsUsed: { scope: string; window: WindowName; span: WindowSpan }[] = [
  { scope: 'namespace/a', window: 'hour', span: HOUR },
  { scope: 'namespace/a', window: 'hour', span: EARLIER_HOUR },
  { scope: 'namespace/a/service/api', window: 'hour', span: HOUR },
  { scope: 'team/core', window: 'day', span: DAY },
  { scope: 'team/B', window: 'month', span: MONTH },
];

/** A quota file with one of everything the store keeps; returns its path. */
function writeSource(name: string): string {
  const path = join(dir, name);
  const s = new SqliteQuotaStore(path);
  s.upsertBudget({ scope: 'namespace/a', window: 'hour', unit: 'tokens', tokens: 100_000, batchFloor: 0.5, backgroundFloor: 0.2 });
  s.upsertBudget({ scope: 'namespace/a', window: 'hour', unit: 'usd', tokens: 2_500_000_000, batchFloor: 0.45, backgroundFloor: 0.15 });
  s.upsertBudget({ scope: 'team/core', window: 'day', unit: 'usd', tokens: 5_000_000_000_000, batchFloor: 0.3, backgroundFloor: 0.1 });
  s.upsertBudget({ scope: 'team/B', window: 'month', unit: 'tokens', tokens: 9_007_199_254_740_000, batchFloor: 0.333, backgroundFloor: 0.1 });
  s.setTeam('core', ['a', 'b']);
  s.setTeam('B', ['c']);
  let n = 1;
  for (const w of windowsUsed) {
    for (let i = 0; i < 3; i++, n++) {
      s.addUsage(w.scope, w.window, w.span.startMs, w.span.endMs, 100 * n, { input: 60 * n, output: 40 * n, cachedInput: 7 * n, cacheWrite: n }, 123_456_789 * n);
      s.addTaggedUsage(w.scope, w.window, w.span.startMs, w.span.endMs, { key: 'feature', value: ['chat', 'search', 'Zeta é'][i]! }, 10 * n, 1000 * n);
      s.addTaggedUsage(w.scope, w.window, w.span.startMs, w.span.endMs, { key: 'team', value: 'ml' }, 5 * n, 500 * n);
      s.addModelUsage(w.scope, w.window, w.span, { provider: 'openai', model: `gpt-${i}` }, 100 * n, { input: 60 * n, output: 40 * n, cachedInput: 7 * n, cacheWrite: n, costNano: 123_456_789 * n });
    }
  }
  // One window past MAX_MODELS_PER_WINDOW models: the last ones fold into `other`.
  for (let m = 0; m < MAX_MODELS_PER_WINDOW + 5; m++) {
    s.addModelUsage('namespace/a', 'hour', HOUR, { provider: 'anthropic', model: `claude-${m}` }, m + 1, { input: m, output: 1, cachedInput: 0, cacheWrite: 0, costNano: 1000 + m });
  }
  s.setAcked('inc-1', 42, NOW - 5000);
  s.setOwner('inc-1', 'a/api', NOW - 4000);
  s.setOwner('inc-2', 'b/worker', NOW - 3000);
  s.setAcked('inc-3', 9_007_199_254_740_991, NOW);
  s.saveLease(lease('live-tokens', Date.now() + 3_600_000, 0));
  s.saveLease(lease('live-usd', Date.now() + 3_600_000, 1));
  s.saveLease(lease('expired', Date.now() - 1000, 1));
  s.close();
  return path;
}

/** Everything both stores answer about the source's data, through their own read methods. */
async function readAll(s: QuotaStore) {
  const windows = [];
  for (const w of windowsUsed) {
    windows.push({
      ...w,
      used: await s.used(w.scope, w.window, w.span.startMs),
      costNano: await s.costNano(w.scope, w.window, w.span.startMs),
      totals: await s.totals(w.scope, w.window, w.span.startMs),
      features: await s.taggedUsage(w.scope, w.window, w.span.startMs, 'feature'),
      teams: await s.taggedUsage(w.scope, w.window, w.span.startMs, 'team'),
      models: await s.modelUsage(w.scope, w.window, w.span.startMs),
      under: await s.scopesUnder(w.scope, w.window, w.span),
      history: await s.history(w.scope, w.window, w.span.endMs, 10),
    });
  }
  const incarnations = ['inc-1', 'inc-2', 'inc-3', 'inc-live-tokens'];
  return {
    budgets: await s.budgets(),
    teams: await s.teams(),
    windows,
    acked: await Promise.all(incarnations.map(async (i) => [i, await s.acked(i), await s.owner(i)])),
    leases: (await s.leases()).sort((a, b) => a.id.localeCompare(b.id)),
  };
}

const sha256 = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');

async function tableCounts(url: string): Promise<Record<string, number>> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const counts: Record<string, number> = {};
    for (const { name: t } of COPY_TABLES) {
      counts[t] = (await client.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${t}`)).rows[0]!.n;
    }
    return counts;
  } finally {
    await client.end();
  }
}

async function tablesIn(url: string): Promise<string[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<{ t: string }>("SELECT tablename AS t FROM pg_tables WHERE schemaname = 'public'")).rows.map((r) => r.t);
  } finally {
    await client.end();
  }
}

describe('llmgw quota-service migrate', () => {
  it('copies every budget, aggregate, sequence, owner, team and live lease, leaves the file untouched, and refuses a second run', async () => {
    const path = writeSource('full.db');
    const before = sha256(path);
    const files = readdirSync(dir).sort();
    const url = await server().createDatabase();

    const r = await runCli(['quota-service', 'migrate', '--from', path, '--to', url]);
    expect(r.stderr + r.stdout).not.toContain(new URL(url).password);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('verified: every budget and aggregate matches');
    expect(r.stdout).toContain('postgres://postgres:***@127.0.0.1');
    expect(r.stdout).toMatch(/budgets +4 \(2 in tokens, 2 in USD\)/);
    expect(r.stdout).toMatch(/leases +2 live \(1 expired or unowned, not copied/);
    expect(sha256(path)).toBe(before);
    // Not even the WAL files a read-only reader creates are left behind (they would be owned by whoever ran it).
    expect(readdirSync(dir).sort()).toEqual(files);

    const src = asyncStore(new SqliteQuotaStore(path));
    const dst = await PgQuotaStore.open(url);
    try {
      const [want, got] = [await readAll(src), await readAll(dst)];
      // The source holds what the comparison is about (not two empty answers agreeing).
      expect(want.budgets).toHaveLength(4);
      expect(want.windows[0]!.models.map((m) => m.model)).toContain(OTHER_MODEL);
      expect(want.leases.map((l) => l.id)).toEqual(['expired', 'live-tokens', 'live-usd']);
      expect(got).toEqual({ ...want, leases: want.leases.filter((l) => l.id !== 'expired') });
    } finally {
      await src.close();
      await dst.close();
    }

    const counts = await tableCounts(url);
    const again = await runCli(['quota-service', 'migrate', '--from', path, '--to', url]);
    expect(again.code).toBe(3);
    expect(again.stderr).toMatch(/already holds data \(acked: 3 rows, budgets: 4 rows, consumption: 5 rows, .*team_namespaces: 3 rows\)/);
    expect(again.stderr).toContain('nothing was changed');
    expect(again.stderr + again.stdout).not.toContain(new URL(url).password);
    expect(await tableCounts(url)).toEqual(counts);
  }, 60_000);

  it('refuses a database holding another application\'s data without creating its tables there', async () => {
    const url = await server().createDatabase();
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    await client.query('CREATE TABLE invoices (id int); INSERT INTO invoices VALUES (1), (2)');
    await client.end();
    const r = await runCli(['quota-service', 'migrate', '--from', writeSource('foreign.db'), '--to', url]);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('already holds data (invoices: 2 rows)');
    expect(await tablesIn(url)).toEqual(['invoices']);
  });

  it('rolls everything back and exits 1 when the read-back differs from the file, and runs again once the cause is gone', async () => {
    const path = writeSource('doctored.db');
    const url = await server().createDatabase();
    await (await PgQuotaStore.open(url)).close();
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    // The database changes one row on its way in: what the check is there to catch.
    await client.query(`CREATE FUNCTION bump() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
      IF NEW.scope = 'team/core' THEN NEW.used := NEW.used + 1; END IF; RETURN NEW; END $$`);
    await client.query('CREATE TRIGGER bump BEFORE INSERT ON consumption FOR EACH ROW EXECUTE FUNCTION bump()');
    try {
      const r = await runCli(['quota-service', 'migrate', '--from', path, '--to', url]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('1 difference(s); rolled back, nothing was written');
      expect(r.stderr).toContain(`consumption (team/core, day, ${DAY.startMs}): used is "3300" in SQLite, "3301" in PostgreSQL`);
      expect(Object.values(await tableCounts(url)).every((n) => n === 0)).toBe(true);

      await client.query('DROP TRIGGER bump ON consumption');
      const ok = await runCli(['quota-service', 'migrate', '--from', path, '--to', url]);
      expect(ok.code, ok.stderr).toBe(0);
      expect((await tableCounts(url)).consumption).toBe(windowsUsed.length);
    } finally {
      await client.end();
    }
  }, 60_000);

  it('rolls back when the file is written to during the copy (a service still running on it)', async () => {
    const path = writeSource('busy.db');
    const url = await server().createDatabase();
    const result = await copyFromSqlite({
      sqlitePath: path,
      url,
      beforeCommit: () => {
        const s = new SqliteQuotaStore(path);
        s.addUsage('namespace/a', 'hour', HOUR.startMs, HOUR.endMs, 1);
        s.close();
      },
    });
    expect(result.status).toBe('source-changed');
    expect(Object.values(await tableCounts(url)).every((n) => n === 0)).toBe(true);
  }, 30_000);

  it('fails with exit 1 and a clear message when the target cannot be reached, never printing the password', async () => {
    const path = writeSource('unreachable.db');
    const url = 'postgres://migrator:Sup3r-s3cret@127.0.0.1:1/quota';
    const r = await runCli(['quota-service', 'migrate', '--from', path, '--to', url]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('cannot connect to PostgreSQL at postgres://migrator:***@127.0.0.1:1/quota: connect ECONNREFUSED');
    expect(r.stdout + r.stderr).not.toContain('Sup3r-s3cret');
  });

  it('takes the target from $LLMGW_QUOTA_STORE when --to is not given', async () => {
    const path = writeSource('from-env.db');
    const r = await runCli(['quota-service', 'migrate', '--from', path], { ...process.env, LLMGW_QUOTA_STORE: 'postgresql://u:envsecret@127.0.0.1:1/q' });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('postgresql://u:***@127.0.0.1:1/q');
    expect(r.stdout + r.stderr).not.toContain('envsecret');
  });

  it('exits 2 on a missing --from file, a file that is no quota database, and a --to that is no postgres URL', async () => {
    const url = await server().createDatabase();
    const missing = await runCli(['quota-service', 'migrate', '--from', join(dir, 'nope.db'), '--to', url]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain(`--from ${join(dir, 'nope.db')}: no such file`);

    const notQuota = join(dir, 'other.db');
    new Database(notQuota).exec('CREATE TABLE t (x)');
    const wrong = await runCli(['quota-service', 'migrate', '--from', notQuota, '--to', url]);
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toContain('not a quota service database');

    const text = join(dir, 'text.db');
    writeFileSync(text, 'not sqlite at all, just some text that is long enough to be a header '.repeat(3));
    const garbage = await runCli(['quota-service', 'migrate', '--from', text, '--to', url]);
    expect(garbage.code).toBe(2);
    expect(garbage.stderr).toContain('cannot be read as a SQLite database');

    const mysql = await runCli(['quota-service', 'migrate', '--from', writeSource('flags.db'), '--to', 'mysql://root:hunter22@db/q']);
    expect(mysql.code).toBe(2);
    expect(mysql.stderr).toContain('expected a postgres:// or postgresql:// URL');
    expect(mysql.stderr).not.toContain('hunter22');

    const noFrom = await runCli(['quota-service', 'migrate', '--to', url]);
    expect(noFrom.code).toBe(2);
    expect(noFrom.stderr).toContain("required option '--from <file>'");
    // Usage mistakes are found before the target is touched: not even its schema is created.
    expect(await tablesIn(url)).toEqual([]);
  }, 30_000);

  it('lists migrate under quota-service --help, beside the service flags and --store', async () => {
    const r = await runCli(['quota-service', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Commands:\n\s+migrate \[options\]/);
    expect(r.stdout).toContain('--store <url>');
    expect(r.stdout).toContain('--listen <host:port>');
  });

  it('moves a file of 50,000 consumption windows (and as many tag and model rows) within a bounded time', async () => {
    const path = join(dir, 'big.db');
    const s = new SqliteQuotaStore(path);
    s.transaction(() => {
      for (let i = 0; i < 50_000; i++) {
        const scope = `namespace/ns-${i % 500}/service/svc-${i % 7}`;
        const span = windowBefore('hour', NOW, Math.floor(i / 500));
        const k = { input: i, output: 2 * i, cachedInput: i % 13, cacheWrite: i % 5 };
        s.addUsage(scope, 'hour', span.startMs, span.endMs, 3 * i, k, 1_000_003 * i);
        s.addTaggedUsage(scope, 'hour', span.startMs, span.endMs, { key: 'feature', value: `f${i % 3}` }, i, 1_000 * i);
        s.addModelUsage(scope, 'hour', span, { provider: 'openai', model: 'gpt-4o' }, 3 * i, { ...k, costNano: 1_000_003 * i });
      }
    });
    s.close();
    const url = await server().createDatabase();
    const started = performance.now();
    const r = await runCli(['quota-service', 'migrate', '--from', path, '--to', url]);
    const seconds = (performance.now() - started) / 1000;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/consumption +50000 scope windows/);
    expect(await tableCounts(url)).toMatchObject({ consumption: 50_000, tagged_consumption: 50_000, model_consumption: 50_000 });
    console.log(`migrated 150,000 rows (50,000 consumption windows) in ${seconds.toFixed(2)} s; the command said: ${/copied in .*/.exec(r.stdout)?.[0]}`);
    expect(seconds).toBeLessThan(60);
  }, 120_000);
});

describe('the check of a copy', () => {
  const consumption = COPY_TABLES.find((t) => t.name === 'consumption')!;
  const row = (scope: string, start: string, used: string): Row => [scope, 'hour', start, '2', used, '0', '0', '0', '0', '0'];
  async function* of(rows: Row[]): AsyncGenerator<Row> {
    yield* rows;
  }

  it('finds a changed value, a row missing in PostgreSQL and one only there, in key order as SQLite sorts', async () => {
    const source = [row('team/B', '1', '10'), row('team/a', '1', '5'), row('team/a', '2', '7'), row('team/ab', '1', '3')];
    const target = [row('team/B', '1', '10'), row('team/a', '1', '6'), row('team/a', '3', '7'), row('team/ab', '1', '3')];
    const c = await compareSorted(consumption, source, of(target));
    expect(c.rows).toBe(4);
    expect(c.count).toBe(3);
    expect(c.differences.map(formatDifference)).toEqual([
      'consumption (team/a, hour, 1): used is "5" in SQLite, "6" in PostgreSQL',
      'consumption (team/a, hour, 2): in SQLite, missing in PostgreSQL',
      'consumption (team/a, hour, 3): in PostgreSQL, not in SQLite',
    ]);
  });

  it('finds nothing when both sides agree, and tells apart whole numbers past 2^53', async () => {
    const same = [row('namespace/a', '9007199254740993', '9007199254740993')];
    expect((await compareSorted(consumption, same, of(same))).count).toBe(0);
    const c = await compareSorted(consumption, same, of([row('namespace/a', '9007199254740993', '9007199254740992')]));
    expect(c.count).toBe(1);
  });

  it('keeps the first differences and counts them all', async () => {
    const source = Array.from({ length: 50 }, (_, i) => row('s', String(i), '1'));
    const c = await compareSorted(consumption, source, of([]), 5);
    expect([c.count, c.differences.length]).toEqual([50, 5]);
  });
});

describe('connection strings in messages', () => {
  it('hides the password in the URL and in password parameters', () => {
    expect(redactUrl('postgres://quota:p%40ss@db.internal:5432/quota?sslmode=require')).toBe('postgres://quota:***@db.internal:5432/quota?sslmode=require');
    expect(redactUrl('postgresql://db/quota?password=hunter22')).toBe('postgresql://db/quota?password=***');
    expect(redactUrl('not a url')).toBe('postgres://***');
    expect(scrubUrl('failed for postgres://quota:p%40ss@db/q and p@ss', 'postgres://quota:p%40ss@db/q')).toBe('failed for postgres://quota:***@db/q and ***');
  });
});
