// `llmgw quota-service migrate --from FILE --to postgres://…`: copies a SQLite quota file into an empty
// PostgreSQL database, checked row by row before it commits. Exit codes: 0 copied and verified; 1 failed
// (unreachable database, an error while copying, a difference found, the file written to meanwhile: all
// rolled back); 2 usage (flags, a --from that is not a quota file, a --to that is not a postgres:// URL);
// 3 refused: the target already holds data (a row in any table). Only 0 changes the target's data; a run
// that gets as far as the copy has migrated its schema first, as the service does at start. The password
// of --to is never printed.
import { existsSync } from 'node:fs';
import { copyFromSqlite, type CopyResult, type CopySummary } from '../../quota-service/postgres/copy-from-sqlite.js';
import { formatDifference } from '../../quota-service/postgres/compare-rows.js';
import { redactUrl, scrubUrl } from '../../quota-service/postgres/redact-url.js';
import { SourceFileError } from '../../quota-service/postgres/sqlite-source.js';
import { UsageError } from '../args.js';

export interface QuotaMigrateFlags {
  from: string;
  /** Default $LLMGW_QUOTA_STORE (keeps the password off the command line). */
  to?: string;
}

export const EXIT_FAILED = 1;
export const EXIT_TARGET_NOT_EMPTY = 3;

export async function runQuotaMigrate(o: QuotaMigrateFlags): Promise<void> {
  const url = o.to ?? (process.env.LLMGW_QUOTA_STORE || undefined);
  if (url === undefined) throw new UsageError('--to postgres://USER:PASSWORD@HOST:PORT/DATABASE is required (or $LLMGW_QUOTA_STORE)');
  if (!/^postgres(ql)?:\/\/./.test(url) || !URL.canParse(url)) throw new UsageError(`--to: expected a postgres:// or postgresql:// URL, got "${redactUrl(url)}"`);
  if (!existsSync(o.from)) throw new UsageError(`--from ${o.from}: no such file (the quota service's --db)`);
  const target = redactUrl(url);
  const out = (line: string): boolean => process.stdout.write(`${line}\n`);
  out(`migrating ${o.from} (opened read-only) to ${target}`);
  out('the quota service using the file should be stopped first: what it writes after the copy is not carried over');
  const started = performance.now();
  let result: CopyResult;
  try {
    result = await copyFromSqlite({ sqlitePath: o.from, url, progress: (line) => process.stderr.write(`llmgw: ${line}\n`) });
  } catch (err) {
    if (err instanceof SourceFileError) throw new UsageError(`--from ${err.message}`);
    // Whatever the driver says, the password does not reach the terminal or a log.
    throw new Error(scrubUrl(err instanceof Error ? err.message : String(err), url), { cause: err });
  }
  const seconds = ((performance.now() - started) / 1000).toFixed(2);
  const fail = (code: number, lines: string[]): void => {
    process.stderr.write(lines.map((l) => `llmgw: ${scrubUrl(l, url)}\n`).join(''));
    process.exitCode = code;
  };
  switch (result.status) {
    case 'copied':
      out(`copied in ${seconds} s:`);
      for (const line of summaryLines(result.summary)) out(`  ${line}`);
      out('verified: every budget and aggregate matches');
      return;
    case 'target-not-empty':
      return fail(EXIT_TARGET_NOT_EMPTY, [
        `refusing to migrate: ${target} already holds data (${result.found.map((f) => `${f.table}: ${f.rows} rows`).join(', ')})`,
        'migrate only into an empty database (a new one, or this one dropped and created again); nothing was changed',
      ]);
    case 'mismatch': {
      const total = result.comparisons.reduce((n, c) => n + c.count, 0);
      const shown = result.comparisons.flatMap((c) => c.differences.map(formatDifference));
      return fail(EXIT_FAILED, [
        `the copy does not match ${o.from}: ${total} difference(s); rolled back, nothing was written to ${target}`,
        ...shown.map((l) => `  ${l}`),
        ...(shown.length < total ? [`  … and ${total - shown.length} more`] : []),
      ]);
    }
    case 'source-changed':
      return fail(EXIT_FAILED, [
        `${o.from} was written to while it was copied (is a quota service still running on it?); rolled back, nothing was written to ${target}`,
        'stop the quota service and run the migration again',
      ]);
  }
}

function summaryLines(s: CopySummary): string[] {
  const rows = (table: string): number => s.tables.find((t) => t.table === table)?.rows ?? 0;
  const teams = rows('team_namespaces');
  return [
    `budgets             ${rows('budgets')} (${s.tokenBudgets} in tokens, ${s.usdBudgets} in USD)`,
    `team namespaces     ${teams}`,
    `consumption         ${rows('consumption')} scope windows (tokens by kind, cost)`,
    `by tag              ${rows('tagged_consumption')} rows`,
    `by model            ${rows('model_consumption')} rows`,
    `report sequences    ${rows('acked')} incarnations (${s.owners} with an owner)`,
    `leases              ${s.liveLeases} live (${s.leases - s.liveLeases} expired or unowned, not copied: they lapse anyway)`,
  ];
}
