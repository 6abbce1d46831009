// Migration 3: the lease call's two functions (schema-v2.ts), with lookups that go by index however the
// planner sizes the tables, and fewer statements per model row. Under the RPC bench's load (`npm run
// bench:quota`, the tables' statistics) every call of migration 2 read the budgets and consumption tables
// whole (the current-windows join hashed every window row kept) and team_namespaces three times, which has
// no index by namespace. With large tables and fresh statistics the planner did choose indexes for budgets
// and windows; team_namespaces it still read whole.
//
// Now: a call's budgets are looked up by scope (= ANY of its scopes, and the key range of its namespaces'
// services), each current window by its whole primary key, one at a time; an operator's read (namespaces
// NULL) and a lease call's are separate statements with filters of their own; deleted leases are found by
// id; and teams by namespace have an index. llmgw_apply adds to a model row its window keeps already in one
// statement (it ran three per model row, and a report touches eight), as SQLite does. What the functions
// return and write is unchanged.
import {
  APPLY_LEASES_AND_SEQUENCES,
  APPLY_MODEL_INSERT,
  APPLY_USAGE,
  LOCK_AND_LOAD_SIGNATURE,
  LOCK_KEYS,
  SNAPSHOT_ACKED,
  SNAPSHOT_BUDGETS,
  SNAPSHOT_LEASES_WHERE,
} from './schema-v2.js';

/** The snapshot document; `leases` and `teams`: the filters of those two lists (the rest goes by call_budgets). */
const snapshotJson = (leases: string, teams: string): string => `json_build_object(
${SNAPSHOT_BUDGETS}      'leases', (SELECT coalesce(json_agg(l ORDER BY l.id), '[]') FROM
        ${SNAPSHOT_LEASES_WHERE}${leases}) l),
      'teams', (SELECT coalesce(json_agg(t ORDER BY t.team, t.namespace), '[]') FROM
        (SELECT team, namespace FROM team_namespaces ${teams}) t),
      -- Each budget's current window by its whole primary key, one lookup per window (LIMIT: not flattened
      -- into a join that reads every row of the table).
      'used', (SELECT coalesce(json_agg(u), '[]') FROM
        (SELECT c.scope, c.window_name AS "window", c.start_ms AS "startMs", c.used, c.cost_nano AS "costNano"
          FROM (SELECT DISTINCT k.scope, k.window_name FROM (SELECT scope, window_name FROM call_budgets UNION ALL SELECT * FROM unnest(extra_scopes, extra_windows)) k) w
          CROSS JOIN LATERAL (SELECT * FROM consumption c WHERE c.scope = w.scope AND c.window_name = w.window_name
            AND c.start_ms = CASE w.window_name WHEN 'minute' THEN starts[1] WHEN 'hour' THEN starts[2] WHEN 'day' THEN starts[3] ELSE starts[4] END
            LIMIT 1) c) u),
${SNAPSHOT_ACKED}    )`;

export const SCHEMA_V3 = `
CREATE INDEX team_namespaces_namespace ON team_namespaces (namespace);

CREATE OR REPLACE FUNCTION ${LOCK_AND_LOAD_SIGNATURE}
RETURNS json LANGUAGE plpgsql AS $fn$
DECLARE
  result json;
  scopes text[];
BEGIN
${LOCK_KEYS}  IF namespaces IS NULL THEN
    -- An operator's read: every budget and live lease.
    WITH call_budgets AS (SELECT * FROM budgets)
    SELECT ${snapshotJson('expires_at_ms > now_ms', '')} INTO result;
  ELSE
    -- The budgets a call can grant from: its namespaces' and their teams' (by scope), and their services'
    -- (a key range of the primary key: '/' and '0' are neighbours in byte order).
    scopes := array(SELECT 'namespace/' || n FROM unnest(namespaces) n
      UNION SELECT 'team/' || t.team FROM team_namespaces t WHERE t.namespace = ANY(namespaces));
    WITH call_budgets AS (
      SELECT b.* FROM budgets b WHERE b.scope = ANY(scopes)
      UNION ALL
      SELECT b.* FROM unnest(namespaces) n CROSS JOIN LATERAL
        (SELECT * FROM budgets b WHERE b.scope > 'namespace/' || n || '/service/' AND b.scope < 'namespace/' || n || '/service0') b
    )
    SELECT ${snapshotJson('namespace = ANY(namespaces) AND expires_at_ms > now_ms', 'WHERE team IN (SELECT team FROM team_namespaces WHERE namespace = ANY(namespaces))')} INTO result;
  END IF;
  RETURN result;
END
$fn$;

CREATE OR REPLACE FUNCTION llmgw_apply(changes jsonb, now_ms bigint, model_cap bigint, other_model text)
RETURNS void LANGUAGE plpgsql AS $fn$
DECLARE
  m record;
  kept boolean;
BEGIN
${APPLY_USAGE}  -- Row by row, as SQLite does: a window keeps at most model_cap + 1 models. A model the window keeps
  -- already (nearly every row) takes one statement, by the primary key.
  FOR m IN SELECT * FROM jsonb_to_recordset(changes->'models') AS r(scope text, "window" text, "startMs" bigint, "endMs" bigint,
      provider text, model text, tokens bigint, input bigint, output bigint, "cachedInput" bigint, "cacheWrite" bigint, "costNano" bigint) LOOP
    UPDATE model_consumption AS t SET used = t.used + m.tokens, input = t.input + m.input, output = t.output + m.output,
        cached_input = t.cached_input + m."cachedInput", cache_write = t.cache_write + m."cacheWrite", cost_nano = t.cost_nano + m."costNano"
      WHERE t.scope = m.scope AND t.window_name = m."window" AND t.start_ms = m."startMs" AND t.provider = m.provider AND t.model = m.model;
    CONTINUE WHEN FOUND;
    kept := (SELECT count(*) FROM model_consumption WHERE scope = m.scope AND window_name = m."window" AND start_ms = m."startMs") < model_cap;
${APPLY_MODEL_INSERT}  END LOOP;

  DELETE FROM leases WHERE id = ANY(ARRAY(SELECT jsonb_array_elements_text(changes->'deletedLeases')));
${APPLY_LEASES_AND_SEQUENCES}END
$fn$;
`;
