// Migration 2: the two functions a replica's lease call runs (replicated-allocator.ts), so that a call is
// five round trips whatever it touches: BEGIN, its namespaces, llmgw_lock_and_load, llmgw_apply, COMMIT.
//
// llmgw_lock_and_load(keys, namespaces, incarnations, now, window starts, extra windows): takes the
// transaction's advisory locks on the sorted keys (namespaces, and incarnation:<id>), then reads, each
// statement after the locks (READ COMMITTED: a fresh snapshot per statement), everything the call's
// allocator can read, as one JSON document: every budget and its current window's consumption, the live
// leases and the teams of the namespaces (NULL: all), the incarnations' sequences, owners and coverage.
//
// llmgw_apply(changes, now, model cap, other model): writes back what the allocator changed, from one JSON
// document: consumption, tag and model increments (a window keeps at most `model cap` + 1 models, the rest
// fold into `other model`, decided row by row as SQLite does), deleted and saved leases, owners, sequences,
// coverage. Every increment is x = x + EXCLUDED.x: nothing is lost to a concurrent writer.
//
// JSON numbers are exact for the store's values (below 2^53).

/** The parts of llmgw_lock_and_load that later migrations' versions of it keep unchanged. */
export const LOCK_AND_LOAD_SIGNATURE = `llmgw_lock_and_load(keys text[], namespaces text[], incarnations text[], now_ms bigint, starts bigint[], extra_scopes text[], extra_windows text[], lock_seed bigint)`;
export const LOCK_KEYS = `  PERFORM pg_advisory_xact_lock(hashtextextended(k, lock_seed)) FROM (SELECT k FROM unnest(keys) WITH ORDINALITY AS u(k, i) ORDER BY i) s;
`;
export const SNAPSHOT_BUDGETS = `      'budgets', (SELECT coalesce(json_agg(b ORDER BY b.unit = 'usd', b.scope, b."window"), '[]') FROM
        (SELECT scope, window_name AS "window", unit, amount AS tokens, batch_floor AS "batchFloor", background_floor AS "backgroundFloor" FROM call_budgets) b),
`;
/** The live leases' columns, up to the filter that follows. */
export const SNAPSHOT_LEASES_WHERE = `(SELECT id, namespace, service, team, pod, priority, incarnation, outstanding, demand, request_tokens AS "requestTokens",
          expires_at_ms AS "expiresAtMs", renew_at_ms AS "renewAtMs", windows, owner, fail_open AS "failOpen", fail_open_next AS "failOpenNext",
          usd, outstanding_nano AS "outstandingNano", demand_nano AS "demandNano", request_nano AS "requestNano",
          fail_open_nano AS "failOpenNano", fail_open_next_nano AS "failOpenNextNano", renewal, claim
          FROM leases WHERE `;
export const SNAPSHOT_ACKED = `      'acked', (SELECT coalesce(json_agg(a), '[]') FROM
        (SELECT incarnation, sequence, owner, covered, reported, flagged FROM acked WHERE incarnation = ANY(incarnations)) a)
`;

/** The snapshot's document, over the CTE call_budgets (the budgets the call reads). */
const SNAPSHOT_JSON = `json_build_object(
${SNAPSHOT_BUDGETS}      'leases', (SELECT coalesce(json_agg(l ORDER BY l.id), '[]') FROM
        ${SNAPSHOT_LEASES_WHERE}expires_at_ms > now_ms AND (namespaces IS NULL OR namespace = ANY(namespaces))) l),
      'teams', (SELECT coalesce(json_agg(t ORDER BY t.team, t.namespace), '[]') FROM
        (SELECT team, namespace FROM team_namespaces WHERE namespaces IS NULL OR team IN (SELECT team FROM team_namespaces WHERE namespace = ANY(namespaces))) t),
      -- Each budget's current window by the whole primary key (not every window the scope ever had).
      'used', (SELECT coalesce(json_agg(u), '[]') FROM
        (SELECT c.scope, c.window_name AS "window", c.start_ms AS "startMs", c.used, c.cost_nano AS "costNano" FROM consumption c
          JOIN (SELECT k.scope, k.window_name, CASE k.window_name WHEN 'minute' THEN starts[1] WHEN 'hour' THEN starts[2] WHEN 'day' THEN starts[3] ELSE starts[4] END AS start_ms
            FROM (SELECT scope, window_name FROM call_budgets UNION SELECT * FROM unnest(extra_scopes, extra_windows)) k) w
          ON c.scope = w.scope AND c.window_name = w.window_name AND c.start_ms = w.start_ms) u),
${SNAPSHOT_ACKED}    )`;

/** The parts of llmgw_apply that later migrations' versions of it keep unchanged. */
export const APPLY_USAGE = `  INSERT INTO consumption AS t (scope, window_name, start_ms, end_ms, used, input, output, cached_input, cache_write, cost_nano)
    SELECT r.scope, r."window", r."startMs", r."endMs", r.tokens, r.input, r.output, r."cachedInput", r."cacheWrite", r."costNano"
    FROM jsonb_to_recordset(changes->'usage') AS r(scope text, "window" text, "startMs" bigint, "endMs" bigint, tokens bigint,
      input bigint, output bigint, "cachedInput" bigint, "cacheWrite" bigint, "costNano" bigint)
    ON CONFLICT (scope, window_name, start_ms) DO UPDATE SET used = t.used + EXCLUDED.used, input = t.input + EXCLUDED.input,
      output = t.output + EXCLUDED.output, cached_input = t.cached_input + EXCLUDED.cached_input,
      cache_write = t.cache_write + EXCLUDED.cache_write, cost_nano = t.cost_nano + EXCLUDED.cost_nano;

  INSERT INTO tagged_consumption AS t (scope, window_name, start_ms, end_ms, tag_key, tag_value, used, cost_nano)
    SELECT r.scope, r."window", r."startMs", r."endMs", r.key, r.value, r.tokens, r."costNano"
    FROM jsonb_to_recordset(changes->'tagged') AS r(scope text, "window" text, "startMs" bigint, "endMs" bigint, key text, value text, tokens bigint, "costNano" bigint)
    ON CONFLICT (scope, window_name, start_ms, tag_key, tag_value) DO UPDATE SET used = t.used + EXCLUDED.used, cost_nano = t.cost_nano + EXCLUDED.cost_nano;

`;
export const APPLY_MODEL_INSERT = `    INSERT INTO model_consumption AS t (scope, window_name, start_ms, end_ms, provider, model, used, input, output, cached_input, cache_write, cost_nano)
      VALUES (m.scope, m."window", m."startMs", m."endMs", CASE WHEN kept THEN m.provider ELSE '' END, CASE WHEN kept THEN m.model ELSE other_model END,
        m.tokens, m.input, m.output, m."cachedInput", m."cacheWrite", m."costNano")
      ON CONFLICT (scope, window_name, start_ms, provider, model) DO UPDATE SET used = t.used + EXCLUDED.used, input = t.input + EXCLUDED.input,
        output = t.output + EXCLUDED.output, cached_input = t.cached_input + EXCLUDED.cached_input,
        cache_write = t.cache_write + EXCLUDED.cache_write, cost_nano = t.cost_nano + EXCLUDED.cost_nano;
`;
export const APPLY_LEASES_AND_SEQUENCES = `  INSERT INTO leases (id, namespace, service, team, pod, priority, incarnation, outstanding, demand, request_tokens, expires_at_ms,
      renew_at_ms, windows, owner, fail_open, fail_open_next, usd, outstanding_nano, demand_nano, request_nano, fail_open_nano, fail_open_next_nano, claim, renewal)
    SELECT r.id, r.namespace, r.service, r.team, r.pod, r.priority, r.incarnation, r.outstanding, r.demand, r."requestTokens", r."expiresAtMs",
      r."renewAtMs", r.windows, r.owner, r."failOpen", r."failOpenNext", r.usd, r."outstandingNano", r."demandNano", r."requestNano",
      r."failOpenNano", r."failOpenNextNano", r.claim, r.renewal
    FROM jsonb_to_recordset(changes->'savedLeases') AS r(id text, namespace text, service text, team text, pod text, priority smallint, incarnation text,
      outstanding bigint, demand double precision, "requestTokens" double precision, "expiresAtMs" bigint, "renewAtMs" bigint, windows text, owner text,
      "failOpen" bigint, "failOpenNext" bigint, usd smallint, "outstandingNano" bigint, "demandNano" double precision, "requestNano" double precision,
      "failOpenNano" bigint, "failOpenNextNano" bigint, claim text, renewal bigint)
    ON CONFLICT (id) DO UPDATE SET outstanding = EXCLUDED.outstanding, demand = EXCLUDED.demand, request_tokens = EXCLUDED.request_tokens,
      expires_at_ms = EXCLUDED.expires_at_ms, renew_at_ms = EXCLUDED.renew_at_ms, windows = EXCLUDED.windows,
      fail_open = EXCLUDED.fail_open, fail_open_next = EXCLUDED.fail_open_next, usd = EXCLUDED.usd, outstanding_nano = EXCLUDED.outstanding_nano,
      demand_nano = EXCLUDED.demand_nano, request_nano = EXCLUDED.request_nano, fail_open_nano = EXCLUDED.fail_open_nano,
      fail_open_next_nano = EXCLUDED.fail_open_next_nano, claim = EXCLUDED.claim, renewal = EXCLUDED.renewal;

  INSERT INTO acked (incarnation, sequence, seen_ms, owner)
    SELECT r.incarnation, 0, r."seenMs", r.owner FROM jsonb_to_recordset(changes->'owners') AS r(incarnation text, owner text, "seenMs" bigint)
    ON CONFLICT (incarnation) DO UPDATE SET owner = EXCLUDED.owner, seen_ms = EXCLUDED.seen_ms;
  INSERT INTO acked (incarnation, sequence, seen_ms)
    SELECT r.incarnation, r.sequence, r."seenMs" FROM jsonb_to_recordset(changes->'acked') AS r(incarnation text, sequence bigint, "seenMs" bigint)
    ON CONFLICT (incarnation) DO UPDATE SET sequence = EXCLUDED.sequence, seen_ms = EXCLUDED.seen_ms;
  INSERT INTO acked (incarnation, sequence, seen_ms, covered, reported, flagged)
    SELECT r.incarnation, 0, now_ms, r.covered, r.reported, r.flagged FROM jsonb_to_recordset(changes->'coverage') AS r(incarnation text, covered bigint, reported bigint, flagged boolean)
    ON CONFLICT (incarnation) DO UPDATE SET covered = EXCLUDED.covered, reported = EXCLUDED.reported, flagged = EXCLUDED.flagged;
`;

export const SCHEMA_V2 = `
CREATE FUNCTION ${LOCK_AND_LOAD_SIGNATURE}
RETURNS json LANGUAGE plpgsql AS $fn$
DECLARE
  result json;
BEGIN
${LOCK_KEYS}  -- Two statements, so that each has a plan of its own: a lease call's reads go by index to its namespaces'
  -- rows; an operator's read (namespaces NULL) takes every budget and live lease.
  IF namespaces IS NULL THEN
    WITH call_budgets AS (SELECT * FROM budgets)
    SELECT ${SNAPSHOT_JSON} INTO result;
  ELSE
    -- The budgets a call can grant from: its namespaces', their services' (a key range of the primary key:
    -- '/' and '0' are neighbours in byte order), and their teams'.
    WITH call_budgets AS (
      SELECT b.* FROM budgets b WHERE b.scope IN (SELECT 'namespace/' || n FROM unnest(namespaces) n
        UNION SELECT 'team/' || t.team FROM team_namespaces t WHERE t.namespace = ANY(namespaces))
      UNION ALL
      SELECT b.* FROM budgets b JOIN unnest(namespaces) n
        ON b.scope > 'namespace/' || n || '/service/' AND b.scope < 'namespace/' || n || '/service0'
    )
    SELECT ${SNAPSHOT_JSON} INTO result;
  END IF;
  RETURN result;
END
$fn$;

CREATE FUNCTION llmgw_apply(changes jsonb, now_ms bigint, model_cap bigint, other_model text)
RETURNS void LANGUAGE plpgsql AS $fn$
DECLARE
  m record;
  kept boolean;
BEGIN
${APPLY_USAGE}  FOR m IN SELECT * FROM jsonb_to_recordset(changes->'models') AS r(scope text, "window" text, "startMs" bigint, "endMs" bigint,
      provider text, model text, tokens bigint, input bigint, output bigint, "cachedInput" bigint, "cacheWrite" bigint, "costNano" bigint) LOOP
    kept := EXISTS (SELECT 1 FROM model_consumption WHERE scope = m.scope AND window_name = m."window" AND start_ms = m."startMs" AND provider = m.provider AND model = m.model)
      OR (SELECT count(*) FROM model_consumption WHERE scope = m.scope AND window_name = m."window" AND start_ms = m."startMs") < model_cap;
${APPLY_MODEL_INSERT}  END LOOP;

  DELETE FROM leases WHERE id IN (SELECT jsonb_array_elements_text(changes->'deletedLeases'));
${APPLY_LEASES_AND_SEQUENCES}END
$fn$;
`;
