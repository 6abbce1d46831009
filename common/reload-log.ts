// One way to log a file that is re-read on change (certificates, keys, tokens, JWKS): a change that
// applied at info, one that cannot be used (the last good content stays) at error.
import type { Logger } from 'pino';

/** A reload callback for `what` (a flag or config key naming the file); the detail is logged as text. */
export function logReload(logger: Logger, what: string): (result: 'ok' | 'failed', detail?: unknown) => void {
  return (result, detail) =>
    result === 'ok'
      ? logger.info({ file: what }, 'file reloaded')
      : logger.error({ file: what, err: String(detail) }, 'file changed but cannot be used; keeping the last good one');
}
