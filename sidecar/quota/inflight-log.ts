// Requests that are running and usage that settled since the outbox last wrote its SQLite file, kept in an
// append-only file beside it, so that a process killed without warning (OOM kill, node loss, an eviction
// past its grace period) loses none of their usage. A metered request's line is written, with one write
// call, before its first upstream byte; a running stream's usage so far is appended at least once a
// second; its settle (the usage it recorded) is one more line. At the next start a dead process's log is
// replayed: settles are recorded as they were, and requests with no settle at the prompt plus the output
// checkpointed.
//
// Why a log and not rows in the SQLite file: a request's line costs one `write` of ~100 bytes, where a
// SQLite transaction per event-loop turn cost tens of microseconds (its page writes) on every request.
// Both survive the death of the process (the bytes are in the kernel's page cache once the call returns);
// neither is flushed to the disk itself, the same promise as the SQLite file's `synchronous = NORMAL`.
//
// The outbox moves settled usage into its SQLite file from time to time; each move starts a new log
// ("rotation"): the new file gets the running requests' lines, then one SQLite transaction records the
// usage and names the new file as the current one, then the old file goes. A crash anywhere in between
// leaves exactly one of the two named in the SQLite file, and that one is replayed at the next start.
//
// Each log belongs to one outbox (`<db>-inflight-<id>`, named in `quota_meta` under `inflight:<id>`), so a
// second outbox on the same file in the same process (the quota settings changed while requests ran)
// leaves the first one's running requests alone.
import { randomUUID } from 'node:crypto';
import { closeSync, openSync, readdirSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { noKinds, type TokenKinds } from '../../proto/token-kinds.js';
import type { Priority } from '../http/caller-headers.js';
import type { SidecarDatabase } from '../storage/database.js';

/** A running request, as the log tracks it. */
export class InflightEntry {
  /** Tokens the request has used as far as the log knows (the prompt at first). */
  tokens: number;
  /** What it has used so far (a stream's checkpoint); set once its answer started. */
  progress: (() => number) | undefined;

  constructor(
    readonly id: number,
    readonly priority: Priority,
    readonly startedAtMs: number,
    readonly model: string,
    /** Canonical JSON of the request's tags, '' for none. */
    readonly tags: string,
    promptTokens: number,
  ) {
    this.tokens = promptTokens;
  }
}

/** Usage of one class, model, second and set of tags (canonical JSON, '' for none). */
export interface Settled {
  priority: Priority;
  model: string;
  second: number;
  tags: string;
  tokens: number;
  /** The tokens by kind (all 0 when unknown). */
  kinds: TokenKinds;
}

/** A new log being started (see `prepareRotation`). */
export interface Rotation {
  file: string;
  fd: number;
  bytes: number;
}

/** What a dead process's logs held: requests that never settled (at their tokens), and settles not yet moved. */
export interface Leftovers {
  orphans: Settled[];
  settled: Settled[];
}

// Lines: one JSON array each. A torn last line (the process died inside a write) is ignored: its request's
// earlier line, or none at all for a request that never went upstream, stands.
type Line =
  | ['b', number, Priority, number, string, string, number] // begin: id, class, started, model, tags, tokens
  | ['c', number, number] // checkpoint: id, tokens so far
  | ['s', number, number, number, number, number, number] // settle of a request the log tracks: id, tokens, input, output, cached input, cache write
  | ['s', 0, Priority, number, string, string, number, number, number, number, number] // settle of usage no request line covers: class, second, model, tags, tokens, and by kind
  | ['e', number]; // end with nothing to record: id

const META_PREFIX = 'inflight:';
/** Logs of outboxes alive in this process: never replayed as a dead process's. */
const openLogs = new Set<string>();
/** Lines kept for a write that keeps failing (a full disk), at most: about 4 MiB. */
const MAX_WAITING_CHARS = 4 * 1024 * 1024;
/** Entry ids, unique in this process whatever the number of logs. */
let nextId = 1;

export class InflightLog {
  /** The log file; undefined for a database in memory (nothing outlives the process anyway). */
  private file: string | undefined;
  private fd: number | undefined;
  private readonly owner = randomUUID();
  private readonly live = new Map<number, InflightEntry>();
  /** Lines waiting for the next write. */
  private waiting = '';
  /** Bytes in the current file. */
  private bytes = 0;
  private readonly stmts;
  private readonly dir: string | undefined;
  private readonly prefix: string;

  constructor(private readonly db: SidecarDatabase) {
    this.stmts = {
      set: db.prepare('INSERT INTO quota_meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value'),
      drop: db.prepare('DELETE FROM quota_meta WHERE key = ?'),
      logs: db.prepare(`SELECT key, value FROM quota_meta WHERE key LIKE '${META_PREFIX}%'`),
    };
    this.dir = db.memory ? undefined : dirname(db.name);
    this.prefix = `${basename(db.name)}-inflight-`;
  }

  /** Starts this outbox's own log (after `takeLeftovers`, so it is not mistaken for a dead one). */
  start(): void {
    if (this.dir === undefined) return;
    const file = this.newFile();
    this.fd = openSync(file, 'a');
    this.stmts.set.run(META_PREFIX + this.owner, basename(file));
    this.file = file;
  }

  /**
   * What the logs of dead processes hold, their names removed from the file: call once at start, inside
   * the transaction that records their usage, and `removeLeftovers` after it committed. Also takes the rows
   * of the SQLite table that builds before this one kept running requests in.
   */
  takeLeftovers(): Leftovers {
    const out: Leftovers = { orphans: [], settled: [] };
    this.takeLegacyRows(out);
    if (this.dir === undefined) return out;
    for (const row of this.stmts.logs.all() as { key: string; value: string }[]) {
      const file = join(this.dir, row.value);
      if (openLogs.has(file)) continue;
      this.stmts.drop.run(row.key);
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch {
        continue; // gone: nothing was running
      }
      replay(text, out);
    }
    return out;
  }

  /** Deletes log files no outbox names any more (replayed, or a rotation that never committed). */
  removeLeftovers(): void {
    if (this.dir === undefined) return;
    const named = new Set((this.stmts.logs.all() as { value: string }[]).map((r) => join(this.dir!, r.value)));
    for (const name of readdirSync(this.dir)) {
      const file = join(this.dir, name);
      if (name.startsWith(this.prefix) && !named.has(file) && !openLogs.has(file)) unlinkQuietly(file);
    }
  }

  /**
   * Starts tracking a request: its line is written, with the lines that waited, before this returns (one
   * `write` of a few hundred bytes at most). Grouping the lines of one event-loop turn into one write, the
   * requests waiting for the turn's end, cost several times more than the write it saved (measured in the
   * bench: the wait moved every request but the first to a later phase of the loop).
   */
  begin(priority: Priority, startedAtMs: number, model: string, tags: string, promptTokens: number): InflightEntry {
    const entry = new InflightEntry(nextId++, priority, startedAtMs, model, tags, Math.max(0, Math.round(promptTokens)));
    if (this.file === undefined) return entry;
    this.live.set(entry.id, entry);
    this.waiting += beginLine(entry);
    this.write();
    return entry;
  }

  /** The request settled, recording `s`: one line, written with the next write. */
  settle(entry: InflightEntry | undefined, s: Settled): void {
    if (this.file === undefined) return;
    const k = s.kinds;
    const kinds = `${k.input},${k.output},${k.cachedInput},${k.cacheWrite}`;
    if (entry !== undefined && this.live.delete(entry.id)) this.waiting += `["s",${entry.id},${s.tokens},${kinds}]\n`;
    else this.waiting += `${JSON.stringify(['s', 0, s.priority, s.second, s.model, s.tags, s.tokens]).slice(0, -1)},${kinds}]\n`;
  }

  /** The request ended with nothing to record. */
  end(entry: InflightEntry): void {
    if (this.live.delete(entry.id)) this.waiting += `["e",${entry.id}]\n`;
  }

  /** Requests being tracked. */
  get running(): number {
    return this.live.size;
  }


  /** Bytes written to the current file since it started. */
  get size(): number {
    return this.bytes;
  }

  /** Appends the checkpoint of every running stream that used more since the last one; returns how many. */
  checkpoint(): number {
    let n = 0;
    for (const entry of this.live.values()) {
      if (entry.progress === undefined) continue;
      const tokens = Math.round(entry.progress());
      if (tokens <= entry.tokens) continue;
      entry.tokens = tokens;
      this.waiting += `["c",${entry.id},${tokens}]\n`;
      n++;
    }
    return n;
  }

  /** Writes the lines that wait. */
  writeWaiting(): void {
    if (this.waiting !== '') this.write();
  }

  /**
   * Rotation, step 1: a new file with the running requests' lines. Step 2 is `commitRotation` inside the
   * caller's transaction (with the usage the old file's settles recorded); step 3 `finishRotation` after it
   * committed, or `abandonRotation` when it rolled back.
   */
  prepareRotation(): Rotation | undefined {
    if (this.dir === undefined) return undefined;
    const file = this.newFile();
    let text = '';
    for (const entry of this.live.values()) text += beginLine(entry);
    let fd: number | undefined;
    try {
      fd = openSync(file, 'a');
      const bytes = text === '' ? 0 : writeSync(fd, text);
      return { file, fd, bytes };
    } catch (err) {
      if (fd !== undefined) closeSync(fd);
      this.abandonRotation({ file, fd: -1, bytes: 0 });
      throw err;
    }
  }

  commitRotation(r: Rotation): void {
    this.stmts.set.run(META_PREFIX + this.owner, basename(r.file));
  }

  finishRotation(r: Rotation): void {
    const old = this.file;
    this.closeFile();
    this.file = r.file;
    this.fd = r.fd;
    this.bytes = r.bytes;
    // Lines that waited belong to the old file's settles, which the transaction just recorded.
    this.waiting = '';
    if (old !== undefined) {
      openLogs.delete(old);
      unlinkQuietly(old);
    }
  }

  abandonRotation(r: Rotation): void {
    if (r.fd >= 0) closeSync(r.fd);
    openLogs.delete(r.file);
    unlinkQuietly(r.file);
  }

  /** Nothing runs any more and everything is recorded: the log and its name go. */
  retire(): void {
    if (this.file === undefined || this.live.size > 0) return;
    try {
      this.stmts.drop.run(META_PREFIX + this.owner);
    } catch {
      return; // the file is locked: the next start finds the log, with nothing left in it
    }
    this.closeFile();
    openLogs.delete(this.file);
    unlinkQuietly(this.file);
    this.file = undefined;
  }

  private newFile(): string {
    const file = join(this.dir!, `${this.prefix}${randomUUID()}`);
    openLogs.add(file);
    return file;
  }

  private closeFile(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  /**
   * Writes the lines that wait. When the file cannot be written (disk full) they wait for the next write
   * and requests go on: a full disk must not stop traffic.
   */
  private write(): void {
    if (this.file === undefined) return;
    try {
      this.fd ??= openSync(this.file, 'a');
      this.bytes += writeSync(this.fd, this.waiting);
      this.waiting = '';
    } catch {
      // Kept in `waiting` for the next write, up to a bound: memory must not grow with a disk that stays
      // full. What is dropped is only the lines' copy on disk; the running requests (`live`) and the settled
      // usage (the outbox's) stay in memory, and the next rotation writes them out again.
      if (this.waiting.length > MAX_WAITING_CHARS) this.waiting = '';
    }
  }

  private takeLegacyRows(out: Leftovers): void {
    const table = this.db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'quota_inflight'").get();
    if (table === undefined) return;
    const rows = this.db.prepare('SELECT priority, started_at_ms AS startedAtMs, model, tags, tokens FROM quota_inflight').all() as {
      priority: Priority;
      startedAtMs: number;
      model: string;
      tags: string;
      tokens: number;
    }[];
    for (const r of rows) out.orphans.push({ priority: r.priority, model: r.model, second: secondOf(r.startedAtMs), tags: r.tags, tokens: r.tokens, kinds: noKinds() });
    this.db.exec('DROP TABLE quota_inflight');
  }
}

const secondOf = (ms: number): number => ms - (ms % 1000);

/** Models and tags as JSON strings: a pod uses a handful, and this runs for every request. */
const quoted = new Map<string, string>();
function quote(s: string): string {
  let q = quoted.get(s);
  if (q === undefined) {
    q = JSON.stringify(s);
    if (quoted.size < 1000) quoted.set(s, q);
  }
  return q;
}

function beginLine(e: InflightEntry): string {
  return `["b",${e.id},"${e.priority}",${e.startedAtMs},${quote(e.model)},${quote(e.tags)},${e.tokens}]\n`;
}

/** Adds what one log holds to `out`. */
function replay(text: string, out: Leftovers): void {
  const running = new Map<number, Settled>();
  const lines = text.split('\n');
  lines.pop(); // '' after the last newline, or a torn last line
  for (const raw of lines) {
    let line: Line;
    try {
      line = JSON.parse(raw) as Line;
    } catch {
      continue;
    }
    if (!wellFormed(line)) continue;
    switch (line[0]) {
      case 'b':
        running.set(line[1], { priority: line[2], second: secondOf(line[3]), model: line[4], tags: line[5], tokens: line[6], kinds: noKinds() });
        break;
      case 'c': {
        const r = running.get(line[1]);
        if (r !== undefined) r.tokens = Math.max(r.tokens, line[2]);
        break;
      }
      case 's':
        if (line[1] !== 0) {
          const r = running.get(line[1]);
          running.delete(line[1]);
          if (r !== undefined) out.settled.push({ ...r, tokens: line[2] as number, kinds: kindsAt(line, 3) });
        } else {
          const l = line as unknown[];
          out.settled.push({ priority: l[2] as Priority, second: l[3] as number, model: l[4] as string, tags: l[5] as string, tokens: l[6] as number, kinds: kindsAt(l, 7) });
        }
        break;
      case 'e':
        running.delete(line[1]);
        break;
    }
  }
  out.orphans.push(...running.values());
}

// The type of each element, the first (the line's kind) included.
const SHAPES: Record<string, string[]> = { b: ['snsnssn'], c: ['snn'], s: ['snnnnnn', 'snsnssnnnnn'], e: ['sn'] };

/** The four kinds of token of a settle line, from position `at`. */
function kindsAt(line: readonly unknown[], at: number): TokenKinds {
  return { input: line[at] as number, output: line[at + 1] as number, cachedInput: line[at + 2] as number, cacheWrite: line[at + 3] as number };
}

/** A line this build writes (a damaged file must not stop the sidecar from starting). */
function wellFormed(line: unknown): line is Line {
  if (!Array.isArray(line) || typeof line[0] !== 'string') return false;
  const shape = SHAPES[line[0]]?.find((s) => s.length === line.length);
  if (shape === undefined) return false;
  for (let i = 1; i < shape.length; i++) {
    const want = shape[i] === 'n' ? 'number' : 'string';
    if (typeof line[i] !== want || (want === 'number' && !Number.isFinite(line[i]))) return false;
  }
  return true;
}

function unlinkQuietly(file: string): void {
  try {
    unlinkSync(file);
  } catch {
    // already gone
  }
}
