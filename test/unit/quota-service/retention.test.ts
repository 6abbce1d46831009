import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { SqliteQuotaStore } from '../../../quota-service/store.js';
import { pruneExpired, RETENTION, SEQUENCES_KEEP_MS } from '../../../quota-service/retention.js';
import { windowAt, type WindowName } from '../../../quota-service/windows.js';

const DAY = 86_400_000;
const NOW = Date.UTC(2026, 10, 23, 10, 0, 0);
const WINDOWS: WindowName[] = ['minute', 'hour', 'day', 'month'];
const tag = { key: 'feature', value: 'search' };

/** A total and a tagged row for the window of each kind that ended `ageMs` before NOW. */
function addAged(store: SqliteQuotaStore, ageMs: number): void {
  for (const w of WINDOWS) {
    const span = windowAt(w, NOW - ageMs - 1);
    store.addUsage('team/core', w, span.startMs, span.endMs, 10);
    store.addTaggedUsage('team/core', w, span.startMs, span.endMs, tag, 10);
  }
}

function kept(store: SqliteQuotaStore, w: WindowName, ageMs: number): { total: boolean; tagged: boolean } {
  const span = windowAt(w, NOW - ageMs - 1);
  return {
    total: store.history('team/core', w, span.startMs, 1).some((r) => r.startMs === span.startMs),
    tagged: store.taggedUsage('team/core', w, span.startMs, 'feature').length > 0,
  };
}

describe('retention', () => {
  it('deletes each kind of window once it is older than its retention, and keeps the rest', async () => {
    const store = new SqliteQuotaStore(':memory:');
    const ages = [DAY, 8 * DAY, 91 * DAY, 401 * DAY];
    for (const age of ages) addAged(store, age);
    // 8 days: the minute rows (2); 91: minute and hour (4); 401: those and the tagged day row (5).
    expect(await pruneExpired(store, NOW, () => false)).toBe(2 + 4 + 5);
    for (const age of ages) {
      for (const w of WINDOWS) {
        const keepFor = (tagged: boolean) => RETENTION.find((r) => r.window === w && r.tagged === tagged && r.models !== true)?.keepMs ?? Infinity;
        // The window ended at least `age` ago (month windows end later than smaller ones of the same instant).
        const ended = NOW - windowAt(w, NOW - age - 1).endMs;
        expect(kept(store, w, age), `${w} window, ${age / DAY} days`).toEqual({ total: ended <= keepFor(false), tagged: ended <= keepFor(true) });
      }
    }
    expect(kept(store, 'month', 401 * DAY)).toEqual({ total: true, tagged: true });
    expect(kept(store, 'day', 401 * DAY)).toEqual({ total: true, tagged: false });
    store.close();
  });

  it('deletes a large backlog in batches, letting the event loop run between them, and stops when told', async () => {
    const store = new SqliteQuotaStore(':memory:');
    const span = windowAt('minute', NOW - 8 * DAY);
    for (let i = 0; i < 2500; i++) store.addTaggedUsage('team/core', 'minute', span.startMs, span.endMs, { key: 'user', value: `u${i}` }, 1);
    let turns = 0;
    let done = false;
    const tick = (): void => {
      turns++;
      if (!done) setImmediate(tick);
    };
    setImmediate(tick);
    const pruned = await pruneExpired(store, NOW, () => false);
    done = true;
    expect(pruned).toBe(2500);
    expect(turns).toBeGreaterThanOrEqual(2); // three batches, two yields
    expect(store.taggedUsage('team/core', 'minute', span.startMs, 'user')).toEqual([]);

    for (let i = 0; i < 2500; i++) store.addTaggedUsage('team/core', 'minute', span.startMs, span.endMs, { key: 'user', value: `u${i}` }, 1);
    const left = (): number => store.taggedUsage('team/core', 'minute', span.startMs, 'user').length;
    // Told to stop as soon as one batch has gone.
    expect(await pruneExpired(store, NOW, () => left() < 2500)).toBe(1000);
    expect(left()).toBe(1500);
    store.close();
  });

  it('forgets the report sequences of incarnations silent for longer than a month, and dates those of older files', async () => {
    const store = new SqliteQuotaStore(':memory:');
    store.setAcked('gone:interactive', 40, NOW - SEQUENCES_KEEP_MS - 1);
    store.setAcked('live:interactive', 7, NOW - DAY);
    expect(await pruneExpired(store, NOW, () => false)).toBe(1);
    expect(store.acked('gone:interactive')).toBe(0);
    expect(store.acked('live:interactive')).toBe(7);
    store.close();

    // A file written before sequences were dated: its rows are dated when it is opened, so kept a month.
    const path = join(mkdtempSync(join(tmpdir(), 'llmgw-quota-')), 'quota.db');
    const old = new Database(path);
    old.exec('CREATE TABLE acked (incarnation TEXT PRIMARY KEY, sequence INTEGER NOT NULL); INSERT INTO acked VALUES (\'old:batch\', 12)');
    old.close();
    const reopened = new SqliteQuotaStore(path);
    const opened = Date.now();
    expect(await pruneExpired(reopened, opened, () => false)).toBe(0);
    expect(reopened.acked('old:batch')).toBe(12);
    expect(await pruneExpired(reopened, opened + SEQUENCES_KEEP_MS + 60_000, () => false)).toBe(1);
    expect(reopened.acked('old:batch')).toBe(0);
    reopened.close();
  });
});
