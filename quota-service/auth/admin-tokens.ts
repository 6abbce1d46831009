// Operator bearer tokens from --admin-token-file: one per line (blank lines and # comments ignored),
// re-read when the file changes. Only digests are held, and compared in constant time.
import { createHash, timingSafeEqual } from 'node:crypto';
import { watchedFile, type WatchedFile } from '../../common/watched-file.js';

/** Shorter lines are not credentials (a typo, a stray word) and are refused. */
export const MIN_ADMIN_TOKEN_LENGTH = 16;

const digest = (token: string): Buffer => createHash('sha256').update(token, 'utf8').digest();

export function parseAdminTokens(text: string): Buffer[] {
  const tokens = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  for (const [i, t] of tokens.entries()) {
    if (t.length < MIN_ADMIN_TOKEN_LENGTH) throw new Error(`token ${i + 1} is shorter than ${MIN_ADMIN_TOKEN_LENGTH} characters`);
  }
  return tokens.map(digest);
}

export class AdminTokens {
  private readonly file: WatchedFile<Buffer[]> | undefined;
  private readonly fixed: Buffer[];

  /** From a watched file, or (embedded use, tests) a fixed list. */
  constructor(source: { path: string; onReload?: (result: 'ok' | 'failed', err?: unknown) => void } | { tokens: readonly string[] }) {
    if ('path' in source) {
      this.file = watchedFile({ path: source.path, parse: parseAdminTokens, ...(source.onReload ? { onReload: source.onReload } : {}) });
      this.fixed = [];
    } else {
      this.fixed = parseAdminTokens(source.tokens.join('\n'));
    }
  }

  get count(): number {
    return (this.file?.value ?? this.fixed).length;
  }

  matches(token: string): boolean {
    const d = digest(token);
    let found = false;
    // Every digest is compared, so the time taken says nothing about which one matched or how closely.
    for (const t of this.file?.value ?? this.fixed) found = timingSafeEqual(t, d) || found;
    return found;
  }

  close(): void {
    this.file?.close();
  }
}
