// The statements of a replica's call (replicated-allocator.ts): the namespace locks, the snapshot a call
// reads (snapshot-store.ts), and the write-back of what it changed, batched: one statement per table,
// whatever the number of scopes, windows, tags and models a batch of reports touched.
import { MAX_MODELS_PER_WINDOW, OTHER_MODEL, type BudgetRow, type LeaseRow, type TeamRow } from '../store.js';
import { windowAt, type WindowName } from '../windows.js';
import { LEASE_COLUMNS, PgQuotaRecords, type Queryable } from './pg-records.js';
import type { CoverageEntry } from '../coverage.js';
import { windowKey, type Changes, type Snapshot, type WindowUsed } from './snapshot-store.js';

/** Advisory-lock keys of namespaces: a second argument of our own, so other users of hashtextextended cannot collide by design. */
const LOCK_SEED = 7411;

/**
 * The namespaces whose pods can share a budget with pods of `namespaces`: themselves, and every namespace
 * of a team that lists one of them (a team's budget is shared by its namespaces).
 */
export async function relatedNamespaces(q: Queryable, namespaces: readonly string[]): Promise<string[]> {
  const { rows } = await q.query<{ namespace: string }>(
    `SELECT DISTINCT t2.namespace FROM team_namespaces t1 JOIN team_namespaces t2 ON t1.team = t2.team WHERE t1.namespace = ANY($1::text[])`,
    [namespaces],
  );
  return [...new Set([...namespaces, ...rows.map((r) => r.namespace)])].sort();
}

/**
 * Locks namespaces and incarnations (`incarnation:<id>`: a namespace has no colon, so the two never mix)
 * until the transaction ends, in one statement, in sorted order: two calls that lock some of the same keys
 * take them in the same order (a deadlock after a team change is detected by PostgreSQL and the transaction
 * retried).
 */
export async function lockKeys(q: Queryable, keys: readonly string[]): Promise<void> {
  if (keys.length === 0) return;
  await q.query(
    `SELECT count(pg_advisory_xact_lock(hashtextextended(k, $2))) FROM (SELECT k FROM unnest($1::text[]) WITH ORDINALITY AS u(k, i) ORDER BY i) s`,
    [[...new Set(keys)].sort(), LOCK_SEED],
  );
}

export interface SnapshotScope {
  /** Live leases of these namespaces (all live leases when undefined). */
  namespaces: readonly string[] | undefined;
  incarnations: readonly string[];
  now: number;
  /** Current windows to load beside every budget's (a budget the call is about to set). */
  windows?: readonly { scope: string; window: WindowName }[];
}

/**
 * Everything a call's allocator can read, in one statement (one round trip): every budget and its current
 * window's consumption, the live leases and the teams of the namespaces, the incarnations' sequences,
 * owners and coverage. JSON carries the rows: BIGINTs stay below 2^53, so they parse to exact numbers.
 */
export async function loadSnapshot(q: Queryable, scope: SnapshotScope): Promise<Snapshot> {
  const extra = scope.windows ?? [];
  const { rows } = await q.query<{ budgets: BudgetRow[]; leases: LeaseRow[]; teams: TeamRow[]; used: { scope: string; window: string; startMs: number; used: number; costNano: number }[]; acked: AckedRow[] }>(SNAPSHOT, [
    scope.now,
    scope.namespaces ?? null,
    scope.incarnations,
    windowAt('minute', scope.now).startMs,
    windowAt('hour', scope.now).startMs,
    windowAt('day', scope.now).startMs,
    windowAt('month', scope.now).startMs,
    extra.map((w) => w.scope),
    extra.map((w) => w.window),
  ]);
  const r = rows[0]!;
  const windows = new Map<string, WindowUsed>();
  for (const b of [...r.budgets, ...extra]) windows.set(windowKey(b.scope, b.window, windowAt(b.window, scope.now).startMs), { used: 0, costNano: 0 });
  for (const u of r.used) windows.set(windowKey(u.scope, u.window, u.startMs), { used: u.used, costNano: u.costNano });
  const incarnations = new Map<string, { acked: number; owner: string }>();
  const coverage = new Map<string, CoverageEntry>();
  for (const i of scope.incarnations) incarnations.set(i, { acked: 0, owner: '' });
  for (const a of r.acked) {
    incarnations.set(a.incarnation, { acked: a.sequence, owner: a.owner });
    coverage.set(a.incarnation, { covered: a.covered < 0 ? Infinity : a.covered, reported: a.reported, flagged: a.flagged });
  }
  return { budgets: r.budgets, leases: r.leases, teams: r.teams, windows, incarnations, coverage };
}

interface AckedRow {
  incarnation: string;
  sequence: number;
  owner: string;
  covered: number;
  reported: number;
  flagged: boolean;
}

/**
 * $1 now, $2 the namespaces (NULL: all), $3 the incarnations, $4–$7 the current minute, hour, day and month
 * starts, $8/$9 scopes and windows to read beside the budgets'.
 */
const SNAPSHOT = `SELECT
  (SELECT coalesce(json_agg(b ORDER BY b.unit = 'usd', b.scope, b."window"), '[]') FROM
    (SELECT scope, window_name AS "window", unit, amount AS tokens, batch_floor AS "batchFloor", background_floor AS "backgroundFloor" FROM budgets) b) AS budgets,
  (SELECT coalesce(json_agg(l ORDER BY l.id), '[]') FROM
    (${LEASE_COLUMNS} FROM leases WHERE expires_at_ms > $1 AND ($2::text[] IS NULL OR namespace = ANY($2::text[]))) l) AS leases,
  (SELECT coalesce(json_agg(t ORDER BY t.team, t.namespace), '[]') FROM
    (SELECT team, namespace FROM team_namespaces WHERE $2::text[] IS NULL OR team IN (SELECT team FROM team_namespaces WHERE namespace = ANY($2::text[]))) t) AS teams,
  (SELECT coalesce(json_agg(c), '[]') FROM
    (SELECT c.scope, c.window_name AS "window", c.start_ms AS "startMs", c.used, c.cost_nano AS "costNano" FROM consumption c
      JOIN (SELECT scope, window_name FROM budgets UNION SELECT * FROM unnest($8::text[], $9::text[])) k ON c.scope = k.scope AND c.window_name = k.window_name
      WHERE c.start_ms = CASE c.window_name WHEN 'minute' THEN $4::bigint WHEN 'hour' THEN $5::bigint WHEN 'day' THEN $6::bigint ELSE $7::bigint END) c) AS used,
  (SELECT coalesce(json_agg(a), '[]') FROM
    (SELECT incarnation, sequence, owner, covered, reported, flagged FROM acked WHERE incarnation = ANY($3::text[])) a) AS acked`;

/** Writes back what a call changed, in its transaction; `now`: when (the sequences' last-seen time for new rows). */
export async function flushChanges(q: Queryable, c: Changes, coverage: ReadonlyMap<string, CoverageEntry>, now: number): Promise<void> {
  const records = new PgQuotaRecords(q, (fn) => fn(q));
  for (const b of c.budgets.upsert) await records.upsertBudget(b);
  for (const d of c.budgets.delete) await records.deleteBudget(d.scope, d.window, d.unit);
  for (const t of c.teams) await records.setTeam(t.team, t.namespaces);
  await addUsage(q, c.usage);
  await addTagged(q, c.tagged);
  await addModels(q, c.models);
  if (c.deletedLeases.size > 0) await q.query('DELETE FROM leases WHERE id = ANY($1::text[])', [[...c.deletedLeases]]);
  for (const l of c.savedLeases.values()) await records.saveLease(l);
  for (const [incarnation, o] of c.owners) await records.setOwner(incarnation, o.owner, o.seenMs);
  for (const [incarnation, a] of c.acked) await records.setAcked(incarnation, a.sequence, a.seenMs);
  if (coverage.size > 0) {
    const rows = [...coverage];
    await q.query(
      `INSERT INTO acked (incarnation, sequence, seen_ms, covered, reported, flagged)
        SELECT i, 0, $2, c, r, f FROM unnest($1::text[], $3::bigint[], $4::bigint[], $5::boolean[]) AS u(i, c, r, f)
        ON CONFLICT (incarnation) DO UPDATE SET covered = EXCLUDED.covered, reported = EXCLUDED.reported, flagged = EXCLUDED.flagged`,
      [rows.map(([i]) => i), now, rows.map(([, e]) => (Number.isFinite(e.covered) ? Math.round(e.covered) : -1)), rows.map(([, e]) => Math.round(e.reported)), rows.map(([, e]) => e.flagged)],
    );
  }
}

async function addUsage(q: Queryable, rows: Changes['usage']): Promise<void> {
  if (rows.length === 0) return;
  await q.query(
    `INSERT INTO consumption AS c (scope, window_name, start_ms, end_ms, used, input, output, cached_input, cache_write, cost_nano)
      SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[])
      ON CONFLICT (scope, window_name, start_ms) DO UPDATE SET used = c.used + EXCLUDED.used, input = c.input + EXCLUDED.input,
        output = c.output + EXCLUDED.output, cached_input = c.cached_input + EXCLUDED.cached_input,
        cache_write = c.cache_write + EXCLUDED.cache_write, cost_nano = c.cost_nano + EXCLUDED.cost_nano`,
    [
      rows.map((r) => r.scope), rows.map((r) => r.window), rows.map((r) => r.startMs), rows.map((r) => r.endMs), rows.map((r) => r.tokens),
      rows.map((r) => r.kinds.input), rows.map((r) => r.kinds.output), rows.map((r) => r.kinds.cachedInput), rows.map((r) => r.kinds.cacheWrite), rows.map((r) => r.costNano),
    ],
  );
}

async function addTagged(q: Queryable, rows: Changes['tagged']): Promise<void> {
  if (rows.length === 0) return;
  await q.query(
    `INSERT INTO tagged_consumption AS t (scope, window_name, start_ms, end_ms, tag_key, tag_value, used, cost_nano)
      SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::text[], $6::text[], $7::bigint[], $8::bigint[])
      ON CONFLICT (scope, window_name, start_ms, tag_key, tag_value) DO UPDATE SET used = t.used + EXCLUDED.used, cost_nano = t.cost_nano + EXCLUDED.cost_nano`,
    [rows.map((r) => r.scope), rows.map((r) => r.window), rows.map((r) => r.startMs), rows.map((r) => r.endMs), rows.map((r) => r.key), rows.map((r) => r.value), rows.map((r) => r.tokens), rows.map((r) => r.costNano)],
  );
}

/**
 * Per model, with the cap of MAX_MODELS_PER_WINDOW models a window keeps (model names are tenant input):
 * the windows' kept models are read first, under the call's namespace locks (every writer of these scopes
 * holds one of them), so the fold into OTHER_MODEL is decided exactly, as one replica over SQLite does.
 */
async function addModels(q: Queryable, rows: Changes['models']): Promise<void> {
  if (rows.length === 0) return;
  const windows = [...new Map(rows.map((r) => [windowKey(r.scope, r.window, r.startMs), r])).values()];
  const kept = await q.query<{ scope: string; window: string; startMs: number; provider: string; model: string }>(
    `SELECT m.scope, m.window_name AS "window", m.start_ms AS "startMs", m.provider, m.model FROM model_consumption m
      JOIN unnest($1::text[], $2::text[], $3::bigint[]) AS k(scope, window_name, start_ms)
      ON m.scope = k.scope AND m.window_name = k.window_name AND m.start_ms = k.start_ms`,
    [windows.map((w) => w.scope), windows.map((w) => w.window), windows.map((w) => w.startMs)],
  );
  const models = new Map<string, Set<string>>();
  const modelsOf = (k: string): Set<string> => models.get(k) ?? models.set(k, new Set()).get(k)!;
  for (const m of kept.rows) modelsOf(windowKey(m.scope, m.window, m.startMs)).add(`${m.provider}\n${m.model}`);
  // Summed per final key: one statement cannot update a row twice.
  const sums = new Map<string, Changes['models'][number]>();
  for (const r of rows) {
    const w = modelsOf(windowKey(r.scope, r.window, r.startMs));
    let { provider, model } = r;
    const id = `${provider}\n${model}`;
    if (!w.has(id)) {
      if (w.size >= MAX_MODELS_PER_WINDOW - 1) {
        provider = '';
        model = OTHER_MODEL;
      }
      w.add(`${provider}\n${model}`);
    }
    const k = `${windowKey(r.scope, r.window, r.startMs)}|${provider}\n${model}`;
    const s = sums.get(k);
    if (s === undefined) sums.set(k, { ...r, provider, model, totals: { ...r.totals } });
    else {
      s.tokens += r.tokens;
      s.totals.input += r.totals.input;
      s.totals.output += r.totals.output;
      s.totals.cachedInput += r.totals.cachedInput;
      s.totals.cacheWrite += r.totals.cacheWrite;
      s.totals.costNano += r.totals.costNano;
    }
  }
  const all = [...sums.values()];
  await q.query(
    `INSERT INTO model_consumption AS m (scope, window_name, start_ms, end_ms, provider, model, used, input, output, cached_input, cache_write, cost_nano)
      SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::text[], $6::text[], $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[], $12::bigint[])
      ON CONFLICT (scope, window_name, start_ms, provider, model) DO UPDATE SET used = m.used + EXCLUDED.used, input = m.input + EXCLUDED.input,
        output = m.output + EXCLUDED.output, cached_input = m.cached_input + EXCLUDED.cached_input,
        cache_write = m.cache_write + EXCLUDED.cache_write, cost_nano = m.cost_nano + EXCLUDED.cost_nano`,
    [
      all.map((r) => r.scope), all.map((r) => r.window), all.map((r) => r.startMs), all.map((r) => r.endMs), all.map((r) => r.provider), all.map((r) => r.model),
      all.map((r) => r.tokens), all.map((r) => r.totals.input), all.map((r) => r.totals.output), all.map((r) => r.totals.cachedInput), all.map((r) => r.totals.cacheWrite), all.map((r) => r.totals.costNano),
    ],
  );
}
