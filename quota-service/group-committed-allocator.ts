// The single replica's allocator over SQLite with group commits (group-commit.ts): every call runs on the
// in-memory Allocator at once and is answered after the turn's commit, whether it succeeded or threw
// (what it wrote before throwing commits with the turn). When the turn's writes are lost, its calls are
// refused as UNAVAILABLE (a sidecar resends them: its reports stay in its outbox until acknowledged) and the
// Allocator is rebuilt from the file, so that memory never holds what the disk does not: a report counted
// only in memory would have its resend taken for a duplicate and be lost. Until a rebuild succeeds (the
// file cannot be read either), every call is refused. When an fsync fails, the file can no longer tell
// what is on disk: every call is refused from then on, and `onSyncFailure` is told (the service ends, to
// start again from what the disk holds: store-backend.ts).
import type { Logger } from 'pino';
import { Allocator, type AllocatorOptions, type AllocatorShared } from './allocator.js';
import { Coverage } from './coverage.js';
import { unavailable, type QuotaError } from './errors.js';
import { TurnLost, type SyncFailed, type Transactional } from './group-commit.js';
import { QUOTA_CALLS, type QuotaAllocator } from './quota-allocator.js';
import type { SqliteQuotaStore } from './store.js';

export interface GroupCommitted {
  /** What the gRPC handlers call: each call resolves once its writes are committed. */
  readonly allocator: QuotaAllocator;
  /** The Allocator in force, for synchronous reads (metrics, the usage page). */
  current(): Allocator;
}

const refused = (err: unknown): QuotaError =>
  unavailable(`the quota service could not write its store (${err instanceof Error ? err.message : String(err)}); send the call again`);

/**
 * `onSyncFailure`: what the service does once an fsync failed (after logging it and refusing the calls);
 * `wrap`: around the store's transaction (tests count or fail its commits and fsyncs).
 */
export function groupCommitted(
  store: SqliteQuotaStore,
  options: AllocatorOptions,
  onSyncFailure: (err: SyncFailed) => void,
  logger?: Logger,
  wrap?: (tx: Transactional) => Transactional,
): GroupCommitted {
  // What outlives a rebuild: what incarnations were granted and reported, and the new-incarnation limiter.
  const shared: AllocatorShared = options.shared ?? { coverage: new Coverage(options.onOverReport), claims: new Map() };
  const build = (): Allocator => new Allocator(store, { ...options, shared });
  let built: Allocator | undefined = build();
  const current = (): Allocator => {
    if (built === undefined) {
      try {
        built = build();
      } catch (err) {
        throw refused(err);
      }
    }
    return built;
  };
  store.groupCommits((err) => {
    logger?.error({ err }, 'the quota store lost the writes of a turn; its calls are refused and the state is read again from the file');
    built = undefined;
    try {
      current();
    } catch (again) {
      logger?.error({ err: again }, 'the quota store cannot be read again; calls are refused until it can');
    }
  }, (err) => {
    logger?.fatal({ err }, 'the quota store could not make its writes durable; calls are refused and the service ends, to start again from what the disk holds');
    onSyncFailure(err);
  }, wrap);
  const calls: Record<string, (...args: unknown[]) => Promise<unknown>> = {};
  for (const name of QUOTA_CALLS) {
    calls[name] = async (...args) => {
      let result: unknown;
      try {
        result = (current()[name] as (...a: unknown[]) => unknown)(...args);
      } catch (err) {
        // Its answer rests on what the turn wrote so far: given once that is on disk, or refused with it.
        const committed = await store.durable().then(
          () => true,
          () => false,
        );
        throw committed && !(err instanceof TurnLost) ? err : refused(err);
      }
      await store.durable().catch((err: unknown) => {
        throw refused(err);
      });
      return result;
    };
  }
  const allocator = Object.defineProperty(calls, 'activeLeases', { get: () => current().activeLeases }) as unknown as QuotaAllocator;
  return { allocator, current };
}
