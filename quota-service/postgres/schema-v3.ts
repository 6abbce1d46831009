// Migration 3: the lease call's two functions (schema-v2.ts) with every lookup by index, so that a call
// costs the same whatever the tables hold. Under load (`npm run bench:quota`, statistics of the tables)
// each call of migration 2 read whole tables: the consumption join hashed every window row ever kept
// (they grow by the minute until retention deletes them), the budgets of a call's namespaces were found
// by scanning every budget, and the live leases and teams through a filter that also matched "all
// namespaces", which a plan kept for the function's later calls cannot narrow by index.
//
// Now: a call's budgets are looked up by scope (= ANY of its scopes, and the key range of its namespaces'
// services), each current window by its whole primary key, one at a time; an operator's read (namespaces
// NULL) and a lease call's are separate statements with filters of their own; deleted leases are found by
// id; and teams by namespace have an index. llmgw_apply adds to a model row its window keeps already in one
// statement (it ran three per model row, and a report touches eight), as SQLite does. What the functions
// return and write is unchanged.
import { APPLY_LEASES_AND_SEQUENCES, APPLY_MODEL_INSERT, APPLY_USAGE } from './schema-v2.js';

/** The snapshot document; `leases` and `teams`: the filters of those two lists (the rest goes by call_budgets). */
const snapshotJson = (leases: string, teams: string): string => `json_build_object(
      'budgets', (SELECT coalesce(json_agg(b ORDER BY b.unit = 'usd', b.scope, b."window"), '[]') FROM
        (SELECT scope, window_name AS "window", unit, amount AS tokens, batch_floor AS "batchFloor", background_floor AS "backgroundFloor" FROM call_budgets) b),
      'leases', (SELECT coalesce(json_agg(l ORDER BY l.id), '[]') FROM
        (SELECT id, namespace, service, team, pod, priority, incarnation, outstanding, demand, request_tokens AS "requestTokens",
          expires_at_ms AS "expiresAtMs", renew_at_ms AS "renewAtMs", windows, owner, fail_open AS "failOpen", fail_open_next AS "failOpenNext",
          usd, outstanding_nano AS "outstandingNano", demand_nano AS "demandNano", request_nano AS "requestNano",
          fail_open_nano AS "failOpenNano", fail_open_next_nano AS "failOpenNextNano", renewal, claim
          FROM leases WHERE ${leases}) l),
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
      'acked', (SELECT coalesce(json_agg(a), '[]') FROM
        (SELECT incarnation, sequence, owner, covered, reported, flagged FROM acked WHERE incarnation = ANY(incarnations)) a)
    )`;

export const SCHEMA_V3 = `
CREATE INDEX team_namespaces_namespace ON team_namespaces (namespace);

CREATE OR REPLACE FUNCTION llmgw_lock_and_load(keys text[], namespaces text[], incarnations text[], now_ms bigint, starts bigint[], extra_scopes text[], extra_windows text[], lock_seed bigint)
RETURNS json LANGUAGE plpgsql AS $fn$
DECLARE
  result json;
  scopes text[];
BEGIN
  PERFORM pg_advisory_xact_lock(hashtextextended(k, lock_seed)) FROM (SELECT k FROM unnest(keys) WITH ORDINALITY AS u(k, i) ORDER BY i) s;
  IF namespaces IS NULL THEN
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
