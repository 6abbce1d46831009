// The sidecar section of charts/llm-gateway/values.schema.json, made from the schema the sidecar validates
// its config with (sidecar/config/schema.ts), so `helm install` refuses what the sidecar would refuse.
// scripts/write-chart-schema.mjs (`npm run chart:schema`) writes it; test/integration/chart-schema.test.ts
// fails when the committed file differs from what this makes.
import * as z from 'zod/mini';
import { configSchema } from '../sidecar/config/schema.js';

type JsonSchema = { [key: string]: unknown; properties?: Record<string, JsonSchema>; required?: string[] };

/**
 * The values under `sidecar` that the chart copies into the sidecar's config.yaml (templates/_helpers.tpl,
 * llmgw.sidecarConfig), each under the config key of the same name. Every other key of `sidecar` is the
 * chart's own and stays hand-written in the schema file.
 */
export const COPIED_KEYS = ['providers', 'models', 'cache', 'quota', 'rateLimits', 'logging', 'tracing'] as const;

/** Keys the chart fills in itself: a value for them would be overridden, so the values schema refuses them. */
export const CHART_FILLED: Record<string, string[]> = { quota: ['address', 'tokenFile', 'tls'] };

const COMMENT = 'Generated from sidecar/config/schema.ts by `npm run chart:schema`: change that schema, not this section.';

/**
 * Checks the sidecar makes with code rather than with the schema's types, written as JSON Schema so the
 * chart applies them too (the sidecar's check is the stricter one; these catch the usual mistakes).
 * Keyed by the path of the schema node, `*` standing for any key of a record.
 */
const REFINEMENTS: Record<string, JsonSchema> = {
  'providers.*.baseUrl': { pattern: '^[Hh][Tt][Tt][Pp][Ss]?://[^?#]+$', description: 'an http(s) URL without query or fragment' },
};

/** Per copied key, what the values may hold beyond the config's meaning of it. */
const DESCRIPTIONS: Record<string, string> = {
  cache: 'The response cache. Empty ({}, the default): off, and config.yaml gets no cache section; any key turns it on, the others taking their defaults.',
  quota: 'Sidecar quota settings; address, tokenFile and tls come from the chart (quota.*). Used only with quota.enabled.',
  rateLimits: 'Per-pod local limits; empty: none.',
  tracing: 'OpenTelemetry traces of every request over OTLP/HTTP (README, "Tracing"); absent: off.',
};

/** The JSON Schema of one copied key, as the values under `sidecar.<key>` must be. */
export function sidecarValueSchema(key: (typeof COPIED_KEYS)[number]): JsonSchema {
  // io input: the config as written, where keys with defaults are optional.
  const whole = z.toJSONSchema(configSchema, { target: 'draft-07', io: 'input', reused: 'inline', unrepresentable: 'throw' }) as JsonSchema;
  const node = whole.properties?.[key];
  if (node === undefined) throw new Error(`the sidecar's config schema has no key "${key}": update COPIED_KEYS in scripts/chart-schema.ts and the chart`);
  const out = tidy(structuredClone(node)) as JsonSchema;
  for (const filled of CHART_FILLED[key] ?? []) {
    if (out.properties?.[filled] === undefined) throw new Error(`${key}.${filled} is no longer in the sidecar's config schema: update CHART_FILLED`);
    delete out.properties[filled];
    out.required = (out.required ?? []).filter((r) => r !== filled);
    if (out.required.length === 0) delete out.required;
  }
  for (const [path, extra] of Object.entries(REFINEMENTS)) {
    const [head, ...rest] = path.split('.');
    if (head === key) Object.assign(at(out, rest, path), extra);
  }
  return { $comment: COMMENT, ...(DESCRIPTIONS[key] === undefined ? {} : { description: DESCRIPTIONS[key] }), ...out };
}

/** The schema file's text with its sidecar section regenerated; every other part is kept as it is. */
export function valuesSchemaText(current: string): string {
  const file = JSON.parse(current) as JsonSchema;
  const sidecar = file.properties?.sidecar?.properties;
  if (sidecar === undefined) throw new Error('values.schema.json has no properties.sidecar.properties');
  for (const key of COPIED_KEYS) sidecar[key] = sidecarValueSchema(key);
  return `${JSON.stringify(file, null, 2)}\n`;
}

/** Drops what only adds noise for values: JavaScript's safe-integer bounds and nested `$schema`s. */
function tidy(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(tidy);
  if (node === null || typeof node !== 'object') return node;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(node)) {
    if (k === '$schema') continue;
    if ((k === 'maximum' && v === Number.MAX_SAFE_INTEGER) || (k === 'minimum' && v === Number.MIN_SAFE_INTEGER)) continue;
    out[k] = tidy(v);
  }
  return out;
}

/** The node at `path` below `root` (`*`: the schema of a record's values); throws when the schema moved. */
function at(root: JsonSchema, path: string[], label: string): JsonSchema {
  let node: JsonSchema | undefined = root;
  for (const part of path) {
    node = part === '*' ? (node?.additionalProperties as JsonSchema | undefined) : node?.properties?.[part];
    if (node === undefined || typeof node !== 'object') throw new Error(`REFINEMENTS: ${label} is not in the sidecar's config schema any more`);
  }
  return node;
}
