// A text file read at start and again whenever it changes on disk (mounted Secrets and ConfigMaps are
// replaced by a symlink swap, which stat sees as a new inode and time).
import { readFileSync, unwatchFile, watchFile, type Stats } from 'node:fs';

export interface WatchedFileOptions<T> {
  path: string;
  /** Turns the file's text into its value; throws when the text is not acceptable. */
  parse: (text: string) => T;
  /** How often the file is checked, in ms (default 2000). */
  intervalMs?: number;
  /** A change that parsed (`ok`) or did not (`failed`: the last good value stays). */
  onReload?: (result: 'ok' | 'failed', err?: unknown) => void;
}

export interface WatchedFile<T> {
  /** The last good value. */
  readonly value: T;
  close(): void;
}

/** Reads and parses the file now (throws, naming the file, when it cannot), then follows its changes. */
export function watchedFile<T>(opts: WatchedFileOptions<T>): WatchedFile<T> {
  const read = (): T => opts.parse(readFileSync(opts.path, 'utf8'));
  let value: T;
  try {
    value = read();
  } catch (err) {
    throw new Error(`${opts.path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const changed = (curr: Stats, prev: Stats): void => {
    if (curr.mtimeMs === prev.mtimeMs && curr.ino === prev.ino && curr.size === prev.size) return;
    try {
      value = read();
      opts.onReload?.('ok');
    } catch (err) {
      opts.onReload?.('failed', err);
    }
  };
  watchFile(opts.path, { interval: opts.intervalMs ?? 2000, persistent: false }, changed);
  return {
    get value() {
      return value;
    },
    close: () => unwatchFile(opts.path, changed),
  };
}
