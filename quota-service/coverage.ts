// Usage an incarnation reported against what its leases were granted: well beyond that is charged, and
// flagged once (a warning, a metric) as fail-open spending far past the cap, or a tampered sidecar.

/**
 * Flagged once reported usage exceeds the grants × COVERAGE_FACTOR + COVERAGE_MARGIN_TOKENS: requests use
 * more than they reserved when their estimate was low, and a pod that lost the service spends up to its
 * fail-open cap (100,000 tokens a minute by default) on no lease at all.
 */
export const COVERAGE_FACTOR = 1.25;
export const COVERAGE_MARGIN_TOKENS = 100_000;

/** Usage reported by an incarnation beyond what its leases were granted (plus the margin). */
export interface OverReport {
  incarnation: string;
  owner: string;
  reportedTokens: number;
  coveredTokens: number;
}

/** What an incarnation was granted and reported, and whether it was flagged. */
export interface CoverageEntry {
  covered: number;
  reported: number;
  flagged: boolean;
}

/**
 * One replica: since this process started, bounded (past 100,000 incarnations it starts again). Several
 * replicas: each call's coverage is seeded with the entries of the incarnations it touches, kept in the
 * database (the entries it was given are updated in place, for the caller to write back).
 */
export class Coverage {
  constructor(
    private readonly onOverReport: (flag: OverReport) => void = () => undefined,
    private readonly byIncarnation = new Map<string, CoverageEntry>(),
  ) {}

  granted(incarnation: string, tokens: number): void {
    this.of(incarnation).covered += tokens;
  }

  /** A lease with no budget to draw on: whatever it reports is covered. */
  unlimited(incarnation: string): void {
    this.of(incarnation).covered = Infinity;
  }

  reported(incarnation: string, owner: string, tokens: number): void {
    const c = this.of(incarnation);
    c.reported += tokens;
    if (c.flagged || c.reported <= c.covered * COVERAGE_FACTOR + COVERAGE_MARGIN_TOKENS) return;
    c.flagged = true;
    this.onOverReport({ incarnation, owner, reportedTokens: c.reported, coveredTokens: c.covered });
  }

  private of(incarnation: string): CoverageEntry {
    let c = this.byIncarnation.get(incarnation);
    if (c === undefined) {
      if (this.byIncarnation.size >= 100_000) this.byIncarnation.clear();
      this.byIncarnation.set(incarnation, (c = { covered: 0, reported: 0, flagged: false }));
    }
    return c;
  }
}
