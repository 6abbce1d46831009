// Who owns what. A sidecar incarnation belongs to the verified identity (namespace/service account) that
// first used it, and so do the leases acquired with it; nobody else may report on it. Without verification
// (--auth none) there is nothing to own. New incarnations are limited per pod, so no caller can fill the
// service with them.
import type { Clock } from '../common/clock.js';
import { permissionDenied, QuotaError } from './errors.js';
import { readThrough } from './read-through.js';
import type { AllocatorStore } from './allocator-store.js';
import { status } from '@grpc/grpc-js';

/** The owner of everything a caller does with --auth none: nothing is checked. */
export const UNVERIFIED = '';
/** New incarnations one pod may start per hour (a pod starts one per priority class, and one more per restart). */
export const MAX_NEW_INCARNATIONS_PER_HOUR = 60;

/** `owner/pod` → new incarnations claimed in the current hour. */
export type IncarnationClaims = Map<string, { hour: number; n: number }>;

export const ownerOf = (identity: { namespace: string; service: string }): string => `${identity.namespace}/${identity.service}`;

export class Ownership {
  private readonly owners = new Map<string, string>();
  constructor(
    private readonly store: AllocatorStore,
    private readonly clock: Clock,
    /** `owner/pod` → new incarnations in the current hour (kept by the process: it outlives a replica's per-call allocators). */
    private readonly claims: IncarnationClaims = new Map(),
  ) {}

  /** The incarnation belongs to `owner` from now on, or already did; anybody else is refused. */
  claim(incarnation: string, owner: string, pod: string): void {
    if (owner === UNVERIFIED) return;
    const current = this.current(incarnation);
    if (current === owner) return;
    if (current !== '') throw permissionDenied(`incarnation ${incarnation} belongs to another identity`);
    this.limit(`${owner}/${pod}`);
    this.store.setOwner(incarnation, owner, this.clock.now());
    this.owners.set(incarnation, owner);
  }

  /** Refuses `owner` what belongs to someone else (`what` names it in the message). */
  check(holder: string, owner: string, what: string): void {
    if (owner !== UNVERIFIED && holder !== owner) throw permissionDenied(`${what} belongs to another identity`);
  }

  current(incarnation: string): string {
    return readThrough(this.owners, incarnation, () => this.store.owner(incarnation));
  }

  private limit(key: string): void {
    const hour = Math.floor(this.clock.now() / 3_600_000);
    let c = this.claims.get(key);
    if (c === undefined || c.hour !== hour) {
      if (this.claims.size >= 100_000) this.claims.clear();
      this.claims.set(key, (c = { hour, n: 0 }));
    }
    if (c.n >= MAX_NEW_INCARNATIONS_PER_HOUR) {
      throw new QuotaError(status.RESOURCE_EXHAUSTED, `this pod started more than ${MAX_NEW_INCARNATIONS_PER_HOUR} incarnations this hour`);
    }
    c.n++;
  }
}
