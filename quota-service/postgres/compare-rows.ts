// The check of a copy: one table's rows from the SQLite file and from PostgreSQL, both sorted by the primary
// key, walked side by side; every row missing, extra or different in any column is a difference. Rows are
// first brought to one form (whole numbers as decimal digits, so nothing past 2^53 compares by accident).
import type { Cell, CellType, CopyTable, Row } from './copy-tables.js';

export type Difference =
  | { table: string; key: Row; kind: 'missing' }
  | { table: string; key: Row; kind: 'extra' }
  | { table: string; key: Row; kind: 'changed'; column: string; source: Cell; target: Cell };

export interface TableComparison {
  table: string;
  /** Rows read from the source. */
  rows: number;
  /** Every difference found (the first `maxKept` of them kept in `differences`). */
  count: number;
  differences: Difference[];
}

/** A value read from either database, in the one form rows are compared and copied in; throws on a value of the wrong kind. */
export function toCell(type: CellType, value: unknown, where: () => string): Cell {
  if (type === 'text' && typeof value === 'string') return value;
  if (type === 'int') {
    if (typeof value === 'bigint') return value.toString();
    if (typeof value === 'number' && Number.isSafeInteger(value)) return String(value);
    if (typeof value === 'string' && /^-?\d+$/.test(value)) return value;
  }
  if (type === 'real') {
    if (typeof value === 'number') return value;
    if (typeof value === 'bigint') return Number(value);
  }
  throw new Error(`${where()}: expected ${type === 'int' ? 'a whole number' : type === 'real' ? 'a number' : 'text'}, found ${describe(value)}`);
}

/** Walks both sorted streams; keeps the first `maxKept` differences, counts them all. */
export async function compareSorted(t: CopyTable, source: Iterable<Row>, target: AsyncIterable<Row>, maxKept = 20): Promise<TableComparison> {
  const result: TableComparison = { table: t.name, rows: 0, count: 0, differences: [] };
  const note = (d: Difference): void => {
    result.count++;
    if (result.differences.length < maxKept) result.differences.push(d);
  };
  const src = source[Symbol.iterator]();
  const dst = target[Symbol.asyncIterator]();
  let a = src.next();
  let b = await dst.next();
  while (!a.done || !b.done) {
    const order = a.done ? 1 : b.done ? -1 : compareKeys(t, a.value, b.value);
    if (order < 0) note({ table: t.name, key: a.value!.slice(0, t.keyLength), kind: 'missing' });
    else if (order > 0) note({ table: t.name, key: b.value!.slice(0, t.keyLength), kind: 'extra' });
    else {
      const [s, d] = [a.value!, b.value!];
      for (let i = t.keyLength; i < t.columns.length; i++) {
        if (s[i] !== d[i]) note({ table: t.name, key: s.slice(0, t.keyLength), kind: 'changed', column: t.columns[i]!.name, source: s[i]!, target: d[i]! });
      }
    }
    if (order <= 0) {
      result.rows++;
      a = src.next();
    }
    if (order >= 0) b = await dst.next();
  }
  return result;
}

/** `consumption (namespace/a, hour, 1764…): used is 12 in SQLite, 13 in PostgreSQL`. */
export function formatDifference(d: Difference): string {
  const at = `${d.table} (${d.key.join(', ')})`;
  if (d.kind === 'missing') return `${at}: in SQLite, missing in PostgreSQL`;
  if (d.kind === 'extra') return `${at}: in PostgreSQL, not in SQLite`;
  return `${at}: ${d.column} is ${JSON.stringify(d.source)} in SQLite, ${JSON.stringify(d.target)} in PostgreSQL`;
}

/** Key order as both databases sort: text by its UTF-8 bytes (SQLite's BINARY, PostgreSQL's "C"), numbers by value. */
function compareKeys(t: CopyTable, a: Row, b: Row): number {
  for (let i = 0; i < t.keyLength; i++) {
    const [x, y] = [a[i]!, b[i]!];
    if (x === y) continue;
    const order = t.columns[i]!.type === 'int' ? Math.sign(Number(BigInt(x) - BigInt(y))) : Buffer.compare(Buffer.from(String(x)), Buffer.from(String(y)));
    if (order !== 0) return order;
  }
  return 0;
}

function describe(value: unknown): string {
  if (value === null) return 'NULL';
  if (Buffer.isBuffer(value)) return `a blob of ${value.length} bytes`;
  return `${typeof value} ${JSON.stringify(typeof value === 'bigint' ? value.toString() : value)}`;
}
