// Hot reload: watches the config file's folder (a Kubernetes ConfigMap update swaps a `..data` symlink
// there rather than writing the file), re-reads on change, and hands over only configs that validate.
import { watch, readFileSync, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { Config } from './schema.js';
import { parseConfigText, type LoadOptions } from './load-config.js';

export interface ConfigWatcherOptions extends LoadOptions {
  path: string;
  /** Called with each new valid config. */
  onReload: (config: Config) => void;
  /** Called when a changed file fails to load; the last good config stays in force. */
  onInvalid: (err: unknown) => void;
  /** Coalesces the bursts of events an editor or a ConfigMap swap produces. */
  debounceMs?: number;
}

export interface ConfigWatcher {
  close(): void;
}

export function watchConfig(opts: ConfigWatcherOptions): ConfigWatcher {
  const debounceMs = opts.debounceMs ?? 100;
  let lastText = readText(opts.path);
  let timer: NodeJS.Timeout | undefined;

  const check = (): void => {
    timer = undefined;
    const text = readText(opts.path);
    // Unchanged bytes (or a transiently missing file during a swap) are not a reload.
    if (text === undefined || text === lastText) return;
    lastText = text;
    parseConfigText(text, basename(opts.path), opts).then(opts.onReload, opts.onInvalid);
  };

  // Only the file's own events and a ConfigMap's `..data` swap count: other files in the folder (a SQLite
  // file or a log kept beside the config) would otherwise postpone a reload for as long as they are written.
  const name = basename(opts.path);
  let watcher: FSWatcher | undefined = watch(dirname(opts.path), { persistent: false }, (_event, file) => {
    if (file !== null && file !== name && !file.startsWith('..')) return;
    if (timer !== undefined) clearTimeout(timer);
    timer = setTimeout(check, debounceMs);
    timer.unref();
  });
  watcher.on('error', (err) => opts.onInvalid(err));

  return {
    close() {
      if (timer !== undefined) clearTimeout(timer);
      watcher?.close();
      watcher = undefined;
    },
  };
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}
