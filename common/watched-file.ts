// A text file read at start and again whenever it changes on disk (mounted Secrets and ConfigMaps are
// replaced by a symlink swap, which stat sees as a new inode and time).
import { readFileSync, statSync, type Stats } from 'node:fs';

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

/** What tells one version of a file from another: a swap gives a new inode, an edit a new time or size. */
const stamp = (s: Stats): string => `${s.ino}:${s.mtimeMs}:${s.size}`;

/**
 * Reads and parses the file now (throws, naming the file, when it cannot), then follows its changes. The
 * file is polled against what was read (not fs.watchFile, whose first look comes a moment after the read:
 * a change in between was never seen).
 */
export function watchedFile<T>(opts: WatchedFileOptions<T>): WatchedFile<T> {
  const read = (): T => opts.parse(readFileSync(opts.path, 'utf8'));
  let value: T;
  let seen: string;
  try {
    seen = stamp(statSync(opts.path));
    value = read();
  } catch (err) {
    throw new Error(`${opts.path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const check = (): void => {
    let now: string;
    try {
      now = stamp(statSync(opts.path));
    } catch {
      return; // gone for a moment (a swap in progress): looked at again next time
    }
    if (now === seen) return;
    seen = now;
    try {
      value = read();
      opts.onReload?.('ok');
    } catch (err) {
      opts.onReload?.('failed', err);
    }
  };
  const timer = setInterval(check, opts.intervalMs ?? 2000);
  timer.unref();
  return {
    get value() {
      return value;
    },
    close: () => clearInterval(timer),
  };
}
