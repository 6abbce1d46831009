// Checks a price file (the operator's `--prices FILE`, YAML or JSON; and, in tests, the shipped table)
// once, at the boundary: every problem is named with its key path, and nothing of a bad file is used.
import { parse as parseYaml } from 'yaml';
import * as z from 'zod/mini';
import { ConfigError } from '../config/config-error.js';
import { formatPath } from '../config/config-path.js';
import { zodIssueProblems } from '../config/zod-issue-problems.js';
import { MODEL_ID, PRICED_PROVIDERS, type PriceFile } from './price-table.js';

/** USD per million tokens, up to a ceiling far above any real price, so a slip of a few zeros is caught. */
const usdPerMTok = z.number().check(z.gte(0), z.lte(10_000));
const date = z.string().check(z.regex(/^\d{4}-\d{2}-\d{2}$/, 'must be a date YYYY-MM-DD'));
const modelId = z.string().check(z.regex(MODEL_ID, 'must be a model id (letters, digits, .-_:/@; up to 128 characters)'));

const priceSchema = z.strictObject({
  input: usdPerMTok,
  output: usdPerMTok,
  cachedInput: z.optional(usdPerMTok),
  cacheWrite: z.optional(usdPerMTok),
  reasoning: z.optional(usdPerMTok),
  aliases: z.optional(z.array(modelId)),
  asOf: z.optional(date),
  source: z.optional(z.url()),
  note: z.optional(z.string()),
});

const fileSchema = z.strictObject({
  asOf: z.optional(date),
  default: z.optional(
    priceSchema.check(z.refine((p: { input: number; output: number }) => p.input > 0 && p.output > 0, 'the default price must not be free: input and output above 0')),
  ),
  models: z.optional(z.partialRecord(z.enum(PRICED_PROVIDERS), z.record(modelId, priceSchema))),
  metricModels: z.optional(z.array(modelId).check(z.maxLength(100))),
});

/** Checks a parsed price file; throws a ConfigError naming every problem, each `label: key.path: what`. */
export function checkPriceFile(raw: unknown, label: string): PriceFile {
  const r = fileSchema.safeParse(raw ?? {}, { reportInput: true });
  if (!r.success) throw new ConfigError(r.error.issues.flatMap((i) => zodIssueProblems(i, fileSchema)).map((p) => `${label}: ${formatPath(p.path)}: ${p.message}`));
  // An id priced twice in one section (as an entry and an alias) would price by whichever came first.
  const problems: string[] = [];
  for (const [provider, models] of Object.entries(r.data.models ?? {})) {
    const ids = new Set(Object.keys(models));
    for (const [id, p] of Object.entries(models)) {
      for (const alias of p.aliases ?? []) {
        if (ids.has(alias)) problems.push(`${label}: models.${provider}.${id}.aliases: "${alias}" is priced already in models.${provider}`);
        ids.add(alias);
      }
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return r.data;
}

/** Parses and checks a price file's text (YAML or JSON: JSON is YAML). */
export function parsePriceFile(text: string, label: string): PriceFile {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new ConfigError([`${label}: not valid YAML or JSON: ${(err as Error).message.split('\n')[0]}`]);
  }
  return checkPriceFile(raw, label);
}
