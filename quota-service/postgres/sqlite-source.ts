// The SQLite quota file a migration reads: opened read-only (nothing is ever written to it, so a service
// still running on it is not disturbed: in WAL mode a reader blocks no writer), read in one snapshot, and
// asked at the end whether anything else committed to it meanwhile.
import { existsSync, statSync, unlinkSync } from 'node:fs';
import Database from 'better-sqlite3';
import { COPY_TABLES, type CopyTable, type Row, type SqliteShape } from './copy-tables.js';
import { toCell } from './compare-rows.js';

/** The file cannot be read as a quota service's database (the operator named the wrong file). */
export class SourceFileError extends Error {
  readonly code = 'MIGRATE_SOURCE_FILE';
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'SourceFileError';
  }
}

export class SqliteSource implements SqliteShape {
  private readonly db: Database.Database;
  private readonly shapes = new Map<string, string[]>();
  private readonly version: unknown;
  /** The WAL files that did not exist before this reader opened the file (it creates them, as the user running it). */
  private readonly created: string[];

  /** Opens `path` read-only and starts its snapshot; throws SourceFileError when it is not a quota database. */
  constructor(
    readonly path: string,
    private readonly nowMs: number,
  ) {
    this.created = ['-wal', '-shm'].map((suffix) => `${path}${suffix}`).filter((f) => !existsSync(f));
    let db: Database.Database | undefined;
    try {
      db = new Database(path, { readonly: true, fileMustExist: true });
      db.pragma('busy_timeout = 5000');
      // Whole numbers as bigint: a count past 2^53 is copied exactly or refused, never rounded.
      db.defaultSafeIntegers(true);
      db.prepare('SELECT count(*) FROM sqlite_master').get();
    } catch (err) {
      db?.close();
      throw new SourceFileError(`${path}: cannot be read as a SQLite database: ${(err as Error).message}`, { cause: err });
    }
    this.db = db;
    if (this.columns('budgets').length === 0 || this.columns('consumption').length === 0) {
      this.db.close();
      throw new SourceFileError(`${path}: not a quota service database (it has no budgets or consumption table)`);
    }
    // Commits by other connections change data_version; reads from here to end() see one snapshot.
    this.version = this.db.pragma('data_version', { simple: true });
    this.db.exec('BEGIN');
    this.db.prepare('SELECT count(*) FROM consumption').get();
  }

  columns(table: string): readonly string[] {
    let cols = this.shapes.get(table);
    if (cols === undefined) {
      cols = (this.db.pragma(`table_info(${table})`) as { name: string }[]).map((c) => c.name);
      this.shapes.set(table, cols);
    }
    return cols;
  }

  /** The table's rows to copy, sorted by its key, one at a time (the file may be larger than memory allows). */
  *rows(t: CopyTable): Generator<Row> {
    const sql = t.sqliteSelect(this, this.nowMs);
    if (sql === undefined) return;
    for (const raw of this.db.prepare(sql).raw(true).iterate() as IterableIterator<unknown[]>) {
      yield raw.map((v, i) => toCell(t.columns[i]!.type, v, () => `${this.path}: ${t.name} (${raw.slice(0, t.keyLength).map(String).join(', ')}) ${t.columns[i]!.name}`));
    }
  }

  /** Numbers for the summary: budgets by unit, incarnations with an owner, leases in the file and how many are copied. */
  counts(): { tokenBudgets: number; usdBudgets: number; owners: number; leases: number; liveLeases: number } {
    const n = (sql: string): number => Number(this.db.prepare(sql).pluck().get());
    const leases = COPY_TABLES.find((t) => t.name === 'leases')!;
    const live = leases.sqliteSelect(this, this.nowMs);
    return {
      tokenBudgets: n('SELECT count(*) FROM budgets'),
      usdBudgets: this.columns('usd_budgets').length > 0 ? n('SELECT count(*) FROM usd_budgets') : 0,
      owners: this.columns('acked').includes('owner') ? n("SELECT count(*) FROM acked WHERE owner <> ''") : 0,
      leases: this.columns('leases').length > 0 ? n('SELECT count(*) FROM leases') : 0,
      liveLeases: live === undefined ? 0 : n(`SELECT count(*) FROM (${live})`),
    };
  }

  /** Ends the snapshot; true when another connection committed to the file since it was opened. */
  end(): boolean {
    this.db.exec('COMMIT');
    return this.db.pragma('data_version', { simple: true }) !== this.version;
  }

  /**
   * Closes the file. A read-only connection cannot remove the WAL files it had to create, as the last
   * connection to close normally does: left behind, owned by whoever ran the migration (root, often), they
   * would keep the service's own user from opening the file again. So they go, unless something wrote to them.
   */
  close(): void {
    if (this.db.inTransaction) this.db.exec('ROLLBACK');
    this.db.close();
    const wal = `${this.path}-wal`;
    if (this.created.length === 2 && existsSync(wal) && statSync(wal).size === 0) for (const f of this.created) unlinkSync(f);
  }
}
