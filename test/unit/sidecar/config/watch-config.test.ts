// The config watcher follows the file through an edit and through a ConfigMap's `..data` symlink swap, and
// other files written in the same folder neither postpone nor trigger a reload.
import { mkdirSync, mkdtempSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Config } from '../../../../sidecar/config/schema.js';
import { watchConfig, type ConfigWatcher } from '../../../../sidecar/config/watch-config.js';

const config = (model: string): string =>
  JSON.stringify({ providers: { p: { type: 'openai', baseUrl: 'http://127.0.0.1:1/v1', apiKey: 'k' } }, models: { [model]: { targets: [{ provider: 'p', model }] } } });

const watchers: ConfigWatcher[] = [];
afterEach(() => {
  for (const w of watchers.splice(0)) w.close();
});

function follow(path: string): Config[] {
  const seen: Config[] = [];
  watchers.push(watchConfig({ path, debounceMs: 100, onReload: (c) => seen.push(c), onInvalid: () => undefined }));
  return seen;
}

async function until(what: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (what()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return what();
}

describe('config watcher', () => {
  it('reloads an edited file while another file in its folder is written all the time', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'llmgw-watch-'));
    const path = join(dir, 'config.json');
    writeFileSync(path, config('a'));
    const seen = follow(path);
    let n = 0;
    const busy = setInterval(() => writeFileSync(join(dir, 'llmgw.db-wal'), String(n++)), 30);
    try {
      await new Promise((r) => setTimeout(r, 200));
      expect(seen).toEqual([]); // the other file's writes are not a reload
      writeFileSync(path, config('b'));
      expect(await until(() => seen.length === 1, 1500)).toBe(true);
      expect(Object.keys(seen[0]!.models)).toEqual(['b']);
    } finally {
      clearInterval(busy);
    }
  });

  it('reloads when a ConfigMap swaps its ..data symlink', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'llmgw-watch-'));
    mkdirSync(join(dir, '..v1'));
    writeFileSync(join(dir, '..v1', 'config.json'), config('a'));
    symlinkSync('..v1', join(dir, '..data'));
    symlinkSync(join('..data', 'config.json'), join(dir, 'config.json'));
    const seen = follow(join(dir, 'config.json'));
    // What the kubelet does: a new timestamped folder, a new ..data link beside the old, renamed over it.
    mkdirSync(join(dir, '..v2'));
    writeFileSync(join(dir, '..v2', 'config.json'), config('b'));
    symlinkSync('..v2', join(dir, '..data_tmp'));
    renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
    expect(await until(() => seen.length === 1, 1500)).toBe(true);
    expect(Object.keys(seen[0]!.models)).toEqual(['b']);
  });
});
