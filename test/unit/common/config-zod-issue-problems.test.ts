// zod's issues worded for people: every kind of issue the config schemas raise, on a small schema.
import * as z from 'zod/mini';
import { describe, expect, it } from 'vitest';
import { describeValue, keysAt, zodIssueProblems } from '../../../common/config/zod-issue-problems.js';

const schema = z.strictObject({
  kind: z.enum(['a', 'b']),
  count: z._default(z.int().check(z.minimum(0), z.maximum(10)), 1),
  ratio: z.optional(z.number().check(z.gt(0), z.lte(1))),
  name: z.optional(z.string().check(z.minLength(1))),
  items: z.optional(z.array(z.strictObject({ id: z.string() })).check(z.minLength(1))),
  byName: z.optional(z.record(z.string().check(z.minLength(1)), z.strictObject({ on: z.boolean() }))),
  nested: z.prefault(z.strictObject({ deep: z.optional(z.strictObject({ leaf: z.string() })) }), {}),
});

function lines(input: unknown): string[] {
  const r = schema.safeParse(input, { reportInput: true });
  if (r.success) return [];
  return r.error.issues.flatMap((i) => zodIssueProblems(i, schema)).map((p) => `${p.path.join('/')}: ${p.message}`);
}

describe('zod issues as config problems', () => {
  it('words every kind of issue with what was expected and what was found', () => {
    expect(lines({ kind: 'c', count: 11, ratio: 0, name: '', items: [], byName: { '': { on: true }, x: { on: 'yes' } } })).toEqual([
      'kind: must be one of "a", "b" (got "c")',
      'count: must be at most 10 (got 11)',
      'ratio: must be greater than 0 (got 0)',
      'name: must not be empty',
      'items: needs at least one entry',
      'byName: invalid key "": must not be empty',
      'byName/x/on: expected true or false, got the string "yes"',
    ]);
    expect(lines({ count: -1, items: [{ id: 7 }] })).toEqual(['kind: required (one of "a", "b")', 'count: must be at least 0 (got -1)', 'items/0/id: expected a string, got the number 7']);
  });

  it('finds the keys an object accepts through optional, default, record and array wrappers', () => {
    expect(keysAt(schema, [])).toEqual(['kind', 'count', 'ratio', 'name', 'items', 'byName', 'nested']);
    expect(keysAt(schema, ['items', 0])).toEqual(['id']);
    expect(keysAt(schema, ['byName', 'anything'])).toEqual(['on']);
    expect(keysAt(schema, ['nested', 'deep'])).toEqual(['leaf']);
    expect(keysAt(schema, ['kind'])).toBeUndefined();
    expect(keysAt(schema, ['nope'])).toBeUndefined();
  });

  it('points a mistyped key at the one it probably meant', () => {
    const r = schema.safeParse({ kind: 'a', nested: { deep: { leaf: 'x', lefa: 'y' } }, cuont: 2 }, { reportInput: true });
    const problems = r.success ? [] : r.error.issues.flatMap((i) => zodIssueProblems(i, schema));
    expect(problems).toEqual([
      { path: ['nested', 'deep'], at: ['nested', 'deep', 'lefa'], message: 'unknown key "lefa" (did you mean "leaf"?)', meant: ['nested', 'deep', 'leaf'] },
      { path: [], at: ['cuont'], message: 'unknown key "cuont" (did you mean "count"?)', meant: ['count'] },
    ]);
  });

  it('describes values by type and shows short scalars, but never a secret', () => {
    expect(describeValue('abc')).toBe('the string "abc"');
    expect(describeValue('x'.repeat(100))).toBe(`the string "${'x'.repeat(57)}..."`);
    expect(describeValue(3)).toBe('the number 3');
    expect(describeValue(false)).toBe('the boolean false');
    expect(describeValue(null)).toBe('an empty value (null)');
    expect(describeValue([1])).toBe('a list');
    expect(describeValue({})).toBe('an object');
    expect(describeValue('sk-secret', ['providers', 'p', 'apiKey'])).toBe('a string');
    expect(describeValue(42, ['providers', 'p', 'headers', 'authorization'])).toBe('a number');
  });
});
