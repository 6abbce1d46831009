// Turns zod's issues (parsed with `reportInput: true`) into problems people can act on: the valid values of
// an enum, the expected type and what was there instead, "did you mean" for a mistyped key. zod/mini ships
// no messages of its own (every issue says "Invalid input"), so each kind of issue is worded here.
import type * as z from 'zod/mini';
import type { ConfigProblem } from './config-error.js';
import { closestName } from './did-you-mean.js';

export interface IssueProblem extends ConfigProblem {
  /** The value at fault (for an unknown key: that key), so problems inside it can be told apart as consequences. */
  at: readonly PropertyKey[];
  /** For an unknown key that looks like a typo: the path of the key it probably meant. */
  meant?: readonly PropertyKey[];
  /** The key is required and absent. */
  absent?: boolean;
}

/** One problem per issue (one per key for unknown keys); `schema` is the one parsed, to name valid keys. */
export function zodIssueProblems(issue: z.core.$ZodIssue, schema: z.core.$ZodType): IssueProblem[] {
  const { path } = issue;
  const one = (message: string): IssueProblem[] => [{ path, at: path, message }];
  const required = (message: string): IssueProblem[] => [{ path, at: path, message, absent: true }];
  const got = (): string => describeValue(issue.input, path);
  // In "(got …)" after a rule, a string reads best as itself.
  const shown = (): string => (typeof issue.input === 'string' && !isSecret(path) ? JSON.stringify(issue.input) : got());
  switch (issue.code) {
    case 'unrecognized_keys': {
      const known = keysAt(schema, path);
      return issue.keys.map((key) => {
        const meant = known === undefined ? undefined : closestName(key, known);
        const hint = meant !== undefined ? ` (did you mean "${meant}"?)` : known !== undefined ? ` (known: ${known.join(', ')})` : '';
        return { path, at: [...path, key], message: `unknown key "${key}"${hint}`, ...(meant === undefined ? {} : { meant: [...path, meant] }) };
      });
    }
    case 'invalid_type':
      if (issue.input === undefined) return required('required');
      return one(`expected ${typeNames[issue.expected] ?? `a ${issue.expected}`}, got ${got()}`);
    case 'invalid_value': {
      const values = issue.values.map((v) => JSON.stringify(v)).join(', ');
      if (issue.input === undefined) return required(`required (${issue.values.length === 1 ? values : `one of ${values}`})`);
      return one(`${issue.values.length === 1 ? `must be ${values}` : `must be one of ${values}`} (got ${shown()})`);
    }
    case 'too_small':
    case 'too_big':
      return one(sizeMessage(issue));
    case 'invalid_key': {
      const inner = issue.issues.flatMap((i) => zodIssueProblems(i, schema)).map((p) => p.message);
      return [{ path: path.slice(0, -1), at: path, message: `invalid key ${JSON.stringify(String(path.at(-1)))}: ${inner.join('; ')}` }];
    }
    case 'custom':
      // A refinement of one value (e.g. a URL) says what the value must be; show what it was.
      return one(isScalar(issue.input) ? `${issue.message} (got ${shown()})` : issue.message);
    default:
      return one(issue.message === 'Invalid input' ? `invalid value: ${got()}` : issue.message);
  }
}

const typeNames: Partial<Record<string, string>> = {
  number: 'a number',
  int: 'a whole number',
  string: 'a string',
  boolean: 'true or false',
  object: 'an object (key: value pairs)',
  record: 'an object (key: value pairs)',
  array: 'a list',
};

function sizeMessage(issue: z.core.$ZodIssueTooSmall | z.core.$ZodIssueTooBig): string {
  const small = issue.code === 'too_small';
  const limit = small ? issue.minimum : issue.maximum;
  if (issue.origin === 'number' || issue.origin === 'int' || issue.origin === 'bigint') {
    const bound = issue.inclusive ? (small ? 'at least' : 'at most') : small ? 'greater than' : 'less than';
    return `must be ${bound} ${limit} (got ${String(issue.input)})`;
  }
  const unit = issue.origin === 'string' ? 'character' : 'entry';
  const units = issue.origin === 'string' ? 'characters' : 'entries';
  if (small && Number(limit) === 1) return issue.origin === 'string' ? 'must not be empty' : 'needs at least one entry';
  return `${small ? 'needs at least' : 'may have at most'} ${limit} ${Number(limit) === 1 ? unit : units}`;
}

const isSecret = (path: readonly PropertyKey[]): boolean => path.at(-1) === 'apiKey' || path.includes('headers');
const isScalar = (v: unknown): boolean => typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean';

/** What a value is, for "got …"; secrets (API keys, headers) are described by their type only. */
export function describeValue(value: unknown, path: readonly PropertyKey[] = []): string {
  const secret = isSecret(path);
  if (value === null) return 'an empty value (null)';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'string') return secret ? 'a string' : `the string ${JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value)}`;
  if (typeof value === 'number' || typeof value === 'boolean') return secret ? `a ${typeof value}` : `the ${typeof value} ${String(value)}`;
  if (typeof value === 'object') return 'an object';
  return typeof value;
}

interface LooseDef {
  type: string;
  shape?: Record<string, z.core.$ZodType>;
  innerType?: z.core.$ZodType;
  valueType?: z.core.$ZodType;
  element?: z.core.$ZodType;
  in?: z.core.$ZodType;
}
const defOf = (s: z.core.$ZodType): LooseDef => s._zod.def as unknown as LooseDef;

/** The keys the object schema at `path` accepts, or undefined when there is no object schema there. */
export function keysAt(schema: z.core.$ZodType, path: readonly PropertyKey[]): string[] | undefined {
  let s: z.core.$ZodType | undefined = unwrap(schema);
  for (const part of path) {
    const def = defOf(s);
    if (def.type === 'object') s = typeof part === 'string' && def.shape !== undefined && Object.hasOwn(def.shape, part) ? def.shape[part] : undefined;
    else if (def.type === 'record') s = def.valueType;
    else if (def.type === 'array') s = def.element;
    else s = undefined;
    if (s === undefined) return undefined;
    s = unwrap(s);
  }
  const def = defOf(s);
  return def.type === 'object' && def.shape !== undefined ? Object.keys(def.shape) : undefined;
}

/** Looks through optional, default and similar wrappers to the schema they hold. */
function unwrap(schema: z.core.$ZodType): z.core.$ZodType {
  let s = schema;
  for (;;) {
    const def = defOf(s);
    const inner = def.type === 'pipe' ? def.in : def.innerType;
    if (inner === undefined) return s;
    s = inner;
  }
}
