// What `llmgw quota-service migrate` copies: each PostgreSQL table (schema-v1.ts), its columns, and the
// SELECT that reads the same rows from a SQLite quota file (store.ts), both sorted by the primary key so
// that the two can be compared row by row. Files from older builds lack some columns: they read as the
// defaults SqliteQuotaStore's own upgrade would give them, since the file is opened read-only.

/** text: a string; int: a whole number, kept as its decimal digits (exact past 2^53); real: a double. */
export type CellType = 'text' | 'int' | 'real';
export type Cell = string | number;
export type Row = Cell[];

export interface CopyColumn {
  /** The PostgreSQL column. */
  name: string;
  type: CellType;
}

/** What the SQLite file holds: its tables and their columns. */
export interface SqliteShape {
  /** The table's columns; none when the file has no such table. */
  columns(table: string): readonly string[];
}

export interface CopyTable {
  /** The PostgreSQL table, also its name in messages. */
  name: string;
  /** In the order both SELECTs return them; the first `keyLength` are the primary key. */
  columns: readonly CopyColumn[];
  keyLength: number;
  /** SQLite SELECT of the rows to copy, sorted by the key; undefined when the file has none of this kind. */
  sqliteSelect(shape: SqliteShape, nowMs: number): string | undefined;
}

const cols = (spec: string): CopyColumn[] =>
  spec.split(/\s+/).filter(Boolean).map((s) => {
    const [name = '', type = ''] = s.split(':');
    return { name, type: type as CellType };
  });

/** `column` when the table has it, else the SQL literal `missing` (what the store's upgrade adds). */
const pick = (shape: SqliteShape, table: string) => (column: string, missing: string) =>
  shape.columns(table).includes(column) ? column : missing;

const has = (shape: SqliteShape, table: string): boolean => shape.columns(table).length > 0;

export const COPY_TABLES: readonly CopyTable[] = [
  {
    // Two SQLite tables (tokens, usd) become one with a unit column.
    name: 'budgets',
    columns: cols('scope:text window_name:text unit:text amount:int batch_floor:real background_floor:real'),
    keyLength: 3,
    sqliteSelect(shape) {
      const parts = [
        has(shape, 'budgets') ? "SELECT scope, window AS window_name, 'tokens' AS unit, tokens AS amount, batch_floor, background_floor FROM budgets" : undefined,
        has(shape, 'usd_budgets') ? "SELECT scope, window, 'usd', nano_usd, batch_floor, background_floor FROM usd_budgets" : undefined,
      ].filter((p) => p !== undefined);
      return parts.length === 0 ? undefined : `${parts.join(' UNION ALL ')} ORDER BY 1, 2, 3`;
    },
  },
  {
    name: 'team_namespaces',
    columns: cols('team:text namespace:text'),
    keyLength: 2,
    sqliteSelect: (shape) => (has(shape, 'team_namespaces') ? 'SELECT team, namespace FROM team_namespaces ORDER BY 1, 2' : undefined),
  },
  {
    name: 'consumption',
    columns: cols('scope:text window_name:text start_ms:int end_ms:int used:int input:int output:int cached_input:int cache_write:int cost_nano:int'),
    keyLength: 3,
    sqliteSelect(shape) {
      if (!has(shape, 'consumption')) return undefined;
      const c = pick(shape, 'consumption');
      const kinds = ['input', 'output', 'cached_input', 'cache_write', 'cost_nano'].map((k) => c(k, '0')).join(', ');
      return `SELECT scope, window, start_ms, end_ms, used, ${kinds} FROM consumption ORDER BY 1, 2, 3`;
    },
  },
  {
    name: 'tagged_consumption',
    columns: cols('scope:text window_name:text start_ms:int tag_key:text tag_value:text end_ms:int used:int cost_nano:int'),
    keyLength: 5,
    sqliteSelect(shape) {
      if (!has(shape, 'tagged_consumption')) return undefined;
      const c = pick(shape, 'tagged_consumption');
      return `SELECT scope, window, start_ms, tag_key, tag_value, end_ms, used, ${c('cost_nano', '0')} FROM tagged_consumption ORDER BY 1, 2, 3, 4, 5`;
    },
  },
  {
    name: 'model_consumption',
    columns: cols('scope:text window_name:text start_ms:int provider:text model:text end_ms:int used:int input:int output:int cached_input:int cache_write:int cost_nano:int'),
    keyLength: 5,
    sqliteSelect: (shape) =>
      has(shape, 'model_consumption')
        ? `SELECT scope, window, start_ms, provider, model, end_ms, used, input, output, cached_input, cache_write, cost_nano
           FROM model_consumption ORDER BY 1, 2, 3, 4, 5`
        : undefined,
  },
  {
    // The highest sequence per incarnation, and its owner. A file from before sequences were dated is dated
    // now, as the store's upgrade does, so the sequences are kept a full retention period.
    name: 'acked',
    columns: cols('incarnation:text sequence:int seen_ms:int owner:text'),
    keyLength: 1,
    sqliteSelect(shape, nowMs) {
      if (!has(shape, 'acked')) return undefined;
      const c = pick(shape, 'acked');
      return `SELECT incarnation, sequence, ${c('seen_ms', String(Math.trunc(nowMs)))}, ${c('owner', "''")} FROM acked ORDER BY 1`;
    },
  },
  {
    // Only leases that have not expired: an expired one is honoured by nobody (the allocator sweeps it at
    // start, giving its outstanding tokens back), so copying it would only have the replicas delete it.
    // Leases from before identities were verified (no owner column) are dropped by the store's upgrade too.
    name: 'leases',
    columns: cols(
      `id:text namespace:text service:text team:text pod:text priority:int incarnation:text owner:text outstanding:int demand:real
       request_tokens:real expires_at_ms:int renew_at_ms:int windows:text fail_open:int fail_open_next:int usd:int outstanding_nano:int
       demand_nano:real request_nano:real fail_open_nano:int fail_open_next_nano:int renewal:int`,
    ),
    keyLength: 1,
    sqliteSelect(shape, nowMs) {
      if (!has(shape, 'leases') || !shape.columns('leases').includes('owner')) return undefined;
      const c = pick(shape, 'leases');
      const later = ['renew_at_ms', 'request_tokens', 'fail_open', 'fail_open_next', 'usd', 'outstanding_nano', 'demand_nano', 'request_nano', 'fail_open_nano', 'fail_open_next_nano', 'renewal'];
      const [renew, request, failOpen, failOpenNext, ...rest] = later.map((k) => c(k, '0'));
      return `SELECT id, namespace, service, team, pod, priority, incarnation, owner, outstanding, demand, ${request}, expires_at_ms, ${renew},
          windows, ${failOpen}, ${failOpenNext}, ${rest.join(', ')}
        FROM leases WHERE expires_at_ms > ${Math.trunc(nowMs)} ORDER BY 1`;
    },
  },
];

/** INSERT of a batch: one parameter per column, an array of that column's values (one round trip per batch). */
export function pgInsert(t: CopyTable): string {
  const arrays = t.columns.map((c, i) => `$${i + 1}::${PG_ARRAY[c.type]}`);
  return `INSERT INTO ${t.name} (${t.columns.map((c) => c.name).join(', ')}) SELECT * FROM unnest(${arrays.join(', ')})`;
}

/** SELECT of every row, in the order of `t.columns`, sorted by the key as SQLite sorts it (COLLATE "C": byte order). */
export function pgSelect(t: CopyTable): string {
  const key = t.columns.slice(0, t.keyLength).map((c) => c.name);
  return `SELECT ${t.columns.map((c) => c.name).join(', ')} FROM ${t.name} ORDER BY ${key.join(', ')}`;
}

const PG_ARRAY: Record<CellType, string> = { text: 'text[]', int: 'bigint[]', real: 'float8[]' };
