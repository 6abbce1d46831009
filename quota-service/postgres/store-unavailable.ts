// A failure of the database itself (not of a call's content) becomes UNAVAILABLE: the sidecar's client sends
// a call that can safely go twice to another replica at once (round robin), whose connections may be fine,
// instead of taking it for a bug of the service (INTERNAL). PostgreSQL's SQLSTATE classes: 08 connection
// exception, 53 insufficient resources, 57 operator intervention (shutdown, cancel, statement timeout), 58
// system error; and the network errors of a connection that broke or never opened.
import { unavailable, type QuotaError } from '../errors.js';

const SQLSTATE_CLASSES = new Set(['08', '53', '57', '58']);
const NETWORK = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);
/** What pg says when a connection ends under a query, or when none could be had in time. */
const PG_MESSAGES = [/^Connection terminated/, /timeout exceeded when trying to connect/, /^Client has encountered a connection error/];

/** The error as UNAVAILABLE when the database failed, else undefined (the caller rethrows it as it is). */
export function storeUnavailable(err: unknown): QuotaError | undefined {
  const code = (err as { code?: unknown }).code;
  const message = err instanceof Error ? err.message : '';
  const failed =
    (typeof code === 'string' && ((code.length === 5 && SQLSTATE_CLASSES.has(code.slice(0, 2))) || NETWORK.has(code))) || PG_MESSAGES.some((m) => m.test(message));
  return failed ? unavailable(`the quota service's database is unavailable (${message || String(code)}); another replica may answer`) : undefined;
}
