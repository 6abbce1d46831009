// The Responses store: per scope, expiring, bounded by bytes (oldest first), a response too large for it
// not kept, and a locked file making it step aside rather than fail the request.
import Database from 'better-sqlite3';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ResponseStore, type StoredResponse } from '../../../../sidecar/responses/response-store.js';
import { openDatabase } from '../../../../sidecar/storage/database.js';

const limits = { ttlMs: 60_000, maxBytes: 100_000 };
const stored = (text: string): StoredResponse => ({ conversation: [{ role: 'user', content: text }], output: [{ type: 'message', content: [] }], response: JSON.stringify({ id: 'r', text }) });

describe('Responses store', () => {
  it('keeps a response per scope: another scope neither reads nor deletes it', () => {
    const store = new ResponseStore(openDatabase(':memory:'), (err) => {
      throw err;
    });
    store.put('ns/a', 'resp_1', stored('hi'), 1000, limits);
    expect(store.get('ns/a', 'resp_1', 2000)).toEqual(stored('hi'));
    expect(store.get('ns/b', 'resp_1', 2000)).toBeUndefined();
    expect(store.delete('ns/b', 'resp_1')).toBe(false);
    expect(store.delete('ns/a', 'resp_1')).toBe(true);
    expect(store.get('ns/a', 'resp_1', 2000)).toBeUndefined();
    expect(store.size).toBe(0);
  });

  it('forgets a response after its time to live, and sweeps it from the file', () => {
    const store = new ResponseStore(openDatabase(':memory:'), () => undefined);
    store.put('s', 'resp_1', stored('hi'), 1000, limits);
    expect(store.get('s', 'resp_1', 60_999)).toBeDefined();
    expect(store.get('s', 'resp_1', 61_000)).toBeUndefined();
    store.sweep(61_000);
    expect(store.size).toBe(0);
  });

  it('lets the oldest go past its byte bound, and keeps no response larger than a tenth of it', () => {
    const store = new ResponseStore(openDatabase(':memory:'), () => undefined);
    const small = { ttlMs: 60_000, maxBytes: 2_000 };
    for (let i = 0; i < 20; i++) store.put('s', `resp_${i}`, stored('x'.repeat(50)), 1000 + i, small);
    expect(store.size).toBeLessThanOrEqual(2_000);
    expect(store.get('s', 'resp_0', 2000)).toBeUndefined();
    expect(store.get('s', 'resp_19', 2000)).toBeDefined();
    store.put('s', 'big', stored('y'.repeat(300)), 5000, small);
    expect(store.get('s', 'big', 6000)).toBeUndefined();
  });

  it('steps aside while another process holds the file: nothing kept, nothing found, no throw', () => {
    const path = join(mkdtempSync(join(tmpdir(), 'llmgw-responses-')), 'llmgw.db');
    const errors: unknown[] = [];
    const store = new ResponseStore(openDatabase(path), (err) => errors.push(err));
    const other = new Database(path);
    other.exec('BEGIN EXCLUSIVE');
    expect(() => store.put('s', 'resp_1', stored('hi'), 1000, limits)).not.toThrow();
    expect(store.get('s', 'resp_1', 2000)).toBeUndefined();
    expect(errors.length).toBeGreaterThan(0);
    other.exec('ROLLBACK');
    other.close();
    store.put('s', 'resp_1', stored('hi'), 1000, limits);
    expect(store.get('s', 'resp_1', 2000)).toEqual(stored('hi'));
  });
});
