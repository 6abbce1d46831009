// Migration 1: the quota service's tables in PostgreSQL: the same data as the SQLite file (store.ts). Several replicas
// grant from them by locking the namespaces a call touches (replicated-allocator.ts): what a window has
// consumed is its consumption rows, what is outstanding the live leases' rows.
//
// Conventions, and why:
// - `window_name`, not `window` (a reserved word in PostgreSQL); one `budgets` table with a `unit` column
//   where SQLite has two tables.
// - Text keys are COLLATE "C": byte order, as SQLite sorts, whatever the database's default collation
//   (en_US would order 'team/a-b' and 'team/ab' differently), and cheaper to compare and index.
// - Token counts, nano-USD, sequences and instants (ms since the epoch) are BIGINT: nano-USD pass 2^31
//   at $2.15. They stay below 2^53, and the store parses them back to numbers and refuses any that do not.
// - Estimates that are averages (demand, request size) and floors are DOUBLE PRECISION (SQLite's REAL).

export const SCHEMA_V1 = `
CREATE TABLE budgets (
  scope TEXT COLLATE "C" NOT NULL,
  window_name TEXT COLLATE "C" NOT NULL CHECK (window_name IN ('minute', 'hour', 'day', 'month')),
  unit TEXT COLLATE "C" NOT NULL CHECK (unit IN ('tokens', 'usd')),
  amount BIGINT NOT NULL,
  batch_floor DOUBLE PRECISION NOT NULL,
  background_floor DOUBLE PRECISION NOT NULL,
  PRIMARY KEY (scope, window_name, unit)
);

CREATE TABLE consumption (
  scope TEXT COLLATE "C" NOT NULL,
  window_name TEXT COLLATE "C" NOT NULL,
  start_ms BIGINT NOT NULL,
  end_ms BIGINT NOT NULL,
  used BIGINT NOT NULL,
  input BIGINT NOT NULL DEFAULT 0,
  output BIGINT NOT NULL DEFAULT 0,
  cached_input BIGINT NOT NULL DEFAULT 0,
  cache_write BIGINT NOT NULL DEFAULT 0,
  cost_nano BIGINT NOT NULL DEFAULT 0,
  PRIMARY KEY (scope, window_name, start_ms)
);
-- Retention deletes by (window, end) and scopesUnder finds a window's rows by it.
CREATE INDEX consumption_ended ON consumption (window_name, end_ms);

CREATE TABLE tagged_consumption (
  scope TEXT COLLATE "C" NOT NULL,
  window_name TEXT COLLATE "C" NOT NULL,
  start_ms BIGINT NOT NULL,
  end_ms BIGINT NOT NULL,
  tag_key TEXT COLLATE "C" NOT NULL,
  tag_value TEXT COLLATE "C" NOT NULL,
  used BIGINT NOT NULL,
  cost_nano BIGINT NOT NULL DEFAULT 0,
  PRIMARY KEY (scope, window_name, start_ms, tag_key, tag_value)
);
CREATE INDEX tagged_consumption_ended ON tagged_consumption (window_name, end_ms);

CREATE TABLE model_consumption (
  scope TEXT COLLATE "C" NOT NULL,
  window_name TEXT COLLATE "C" NOT NULL,
  start_ms BIGINT NOT NULL,
  end_ms BIGINT NOT NULL,
  provider TEXT COLLATE "C" NOT NULL,
  model TEXT COLLATE "C" NOT NULL,
  used BIGINT NOT NULL,
  input BIGINT NOT NULL,
  output BIGINT NOT NULL,
  cached_input BIGINT NOT NULL,
  cache_write BIGINT NOT NULL,
  cost_nano BIGINT NOT NULL,
  PRIMARY KEY (scope, window_name, start_ms, provider, model)
);
CREATE INDEX model_consumption_ended ON model_consumption (window_name, end_ms);

-- Everything a lease holds (lease-rows.ts), both units' balances included, so that any replica can renew,
-- settle or expire any lease. windows stays the JSON text the allocator wrote (budget key -> window start).
CREATE TABLE leases (
  id TEXT COLLATE "C" PRIMARY KEY,
  namespace TEXT NOT NULL,
  service TEXT NOT NULL,
  team TEXT NOT NULL,
  pod TEXT NOT NULL,
  priority SMALLINT NOT NULL,
  incarnation TEXT COLLATE "C" NOT NULL,
  owner TEXT NOT NULL DEFAULT '',
  outstanding BIGINT NOT NULL,
  demand DOUBLE PRECISION NOT NULL,
  request_tokens DOUBLE PRECISION NOT NULL DEFAULT 0,
  expires_at_ms BIGINT NOT NULL,
  renew_at_ms BIGINT NOT NULL DEFAULT 0,
  windows TEXT NOT NULL,
  fail_open BIGINT NOT NULL DEFAULT 0,
  fail_open_next BIGINT NOT NULL DEFAULT 0,
  usd SMALLINT NOT NULL DEFAULT 0 CHECK (usd IN (0, 1)),
  outstanding_nano BIGINT NOT NULL DEFAULT 0,
  demand_nano DOUBLE PRECISION NOT NULL DEFAULT 0,
  request_nano DOUBLE PRECISION NOT NULL DEFAULT 0,
  fail_open_nano BIGINT NOT NULL DEFAULT 0,
  fail_open_next_nano BIGINT NOT NULL DEFAULT 0,
  -- JSON {keys, untilMs}: a need refused because other leases hold what it waits for (they give back meanwhile).
  claim TEXT,
  -- The highest renewal number its sidecar sent: a renewal sent again (to another replica) gives back once.
  renewal BIGINT NOT NULL DEFAULT 0
);
-- Any replica sweeps the expired leases (what they held is no longer outstanding).
CREATE INDEX leases_expiry ON leases (expires_at_ms);
-- A lease call reads the live leases of the namespaces it locked.
CREATE INDEX leases_namespace ON leases (namespace);

-- The highest report sequence processed per sidecar incarnation, when it last advanced, and the verified
-- identity that owns the incarnation. A report's check and its consumption go in one transaction that
-- locks this row (SELECT … FOR UPDATE), so that two replicas never both apply one report.
-- With it, what the incarnation was granted and reported (coverage.ts: covered -1 when unlimited) and whether
-- it was flagged for reporting well beyond its grants, whichever replicas granted and received them.
CREATE TABLE acked (
  incarnation TEXT COLLATE "C" PRIMARY KEY,
  sequence BIGINT NOT NULL,
  seen_ms BIGINT NOT NULL DEFAULT 0,
  owner TEXT NOT NULL DEFAULT '',
  covered BIGINT NOT NULL DEFAULT 0,
  reported BIGINT NOT NULL DEFAULT 0,
  flagged BOOLEAN NOT NULL DEFAULT false
);
CREATE INDEX acked_seen ON acked (seen_ms);

CREATE TABLE team_namespaces (
  team TEXT COLLATE "C" NOT NULL,
  namespace TEXT COLLATE "C" NOT NULL,
  PRIMARY KEY (team, namespace)
);
`;
