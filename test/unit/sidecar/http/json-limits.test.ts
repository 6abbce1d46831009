// The JSON bounds: the depth scanner on raw bytes, slice-by-slice parsing of large bodies (same result as
// JSON.parse, same refusals), and the message / tool / content-part count limits.
import { describe, expect, it } from 'vitest';
import { GatewayError } from '../../../../common/errors.js';
import { JsonScanner, SLICE_TOKENS, type ScanResult } from '../../../../common/http/json-scanner.js';
import { parseInSlices } from '../../../../common/http/parse-in-slices.js';
import { MAX_JSON_DEPTH } from '../../../../common/http/read-json-body.js';
import { checkRequestCounts, MAX_CONTENT_PARTS, MAX_MESSAGES, MAX_TOOLS } from '../../../../sidecar/http/json-limits.js';

/** Scans `text` in chunks of `chunkSize` bytes (1 = every byte boundary). */
function scan(text: string, chunkSize = 1 << 16): ScanResult {
  const raw = Buffer.from(text);
  const s = new JsonScanner(MAX_JSON_DEPTH);
  for (let i = 0; i < raw.length; i += chunkSize) s.push(raw.subarray(i, i + chunkSize));
  return s.finish();
}

const nested = (levels: number, open = '[', close = ']'): string => open.repeat(levels) + close.repeat(levels);
const nestedObjects = (levels: number): string => '{"a":'.repeat(levels - 1) + '{}' + '}'.repeat(levels - 1);

describe('depth scanner', () => {
  it('passes exactly the limit and refuses one level more, for arrays and objects', () => {
    expect(scan(nested(MAX_JSON_DEPTH)).status).toBe('ok');
    expect(scan(nested(MAX_JSON_DEPTH + 1)).status).toBe('too-deep');
    expect(scan(nestedObjects(MAX_JSON_DEPTH)).status).toBe('ok');
    expect(scan(nestedObjects(MAX_JSON_DEPTH + 1)).status).toBe('too-deep');
  });

  it('refuses 100,000 levels without recursing', () => {
    expect(scan(nested(100_000)).status).toBe('too-deep');
    expect(scan(nestedObjects(100_000), 7).status).toBe('too-deep');
  });

  it('ignores brackets inside strings, escaped quotes included, across any chunk boundary', () => {
    const inner = JSON.stringify({ s: '[[[{{{ \\" \\\\" ]]] "quoted [" \\', t: ['\\\\', '"[', '\\"{'] });
    const text = nested(MAX_JSON_DEPTH - 2).replace('[]', `[${inner}]`);
    for (const size of [1, 2, 3, 5, 64]) expect(scan(text, size)).toEqual({ status: 'ok', root: undefined });
    const over = nested(MAX_JSON_DEPTH - 1).replace('[]', `[${inner}]`);
    for (const size of [1, 3, 64]) expect(scan(over, size).status).toBe('too-deep');
  });

  it('names the top-level key under which the limit was passed', () => {
    const text = `{"model":"m","messages":${nested(MAX_JSON_DEPTH)}}`;
    const raw = Buffer.from(text);
    const r = scan(text);
    expect(r.status).toBe('too-deep');
    if (r.status === 'too-deep') expect(raw.toString('utf8', ...r.topKey!)).toBe('"messages"');
  });

  it('flags unbalanced or mismatched brackets and trailing bytes', () => {
    expect(scan('[1,2}').status).toBe('malformed');
    expect(scan('[1,2]]').status).toBe('malformed');
    expect(scan('{"a":1} x').status).toBe('malformed');
    expect(scan('{"a":[1,2').status).toBe('malformed');
    expect(scan('{"a":"unterminated}').status).toBe('malformed');
  });

  it('leaves a small body to one JSON.parse', () => {
    expect(scan(JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }] }))).toEqual({ status: 'ok', root: undefined });
  });
});

async function sliced(text: string, chunkSize = 1 << 16): Promise<unknown> {
  const r = scan(text, chunkSize);
  if (r.status !== 'ok' || r.root === undefined) throw new Error(`not sliced: ${JSON.stringify(r)}`);
  return parseInSlices(Buffer.from(text), r.root);
}

describe('parsing in slices', () => {
  const many = <T,>(n: number, f: (i: number) => T): T[] => Array.from({ length: n }, (_, i) => f(i));

  it('gives what JSON.parse gives for a large body with large nested members', async () => {
    const body = {
      model: 'm',
      messages: many(SLICE_TOKENS, (i) => ({ role: 'user', content: i % 3 === 0 ? many(3, () => ({ type: 'text', text: 'a,b]"' })) : `m${i}` })),
      tools: [{ type: 'function', function: { name: 'f', parameters: { properties: Object.fromEntries(many(SLICE_TOKENS, (i): [string, unknown] => [`p${i}`, { type: "string" }])) } } }],
      input: many(3 * SLICE_TOKENS, (i) => i),
      tail: 'x'.repeat(2 << 20),
    };
    const text = JSON.stringify(body, null, 1);
    expect(await sliced(text)).toEqual(JSON.parse(text));
    expect(await sliced(text, 4099)).toEqual(JSON.parse(text));
  });

  it('keeps "__proto__" an own key and the last of duplicate keys, as JSON.parse does', async () => {
    const big = JSON.stringify(many(SLICE_TOKENS, (i) => i));
    const text = `{"__proto__":{"polluted":true},"a":1,"a":${big},"b":${big},"b":2}`;
    const got = (await sliced(text)) as Record<string, unknown>;
    const want = JSON.parse(text) as Record<string, unknown>;
    expect(Object.getPrototypeOf(got)).toBe(Object.prototype);
    expect(Object.keys(got)).toEqual(Object.keys(want));
    expect(got).toEqual(want);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('refuses malformed large bodies that the scanner lets through', async () => {
    const big = JSON.stringify(many(SLICE_TOKENS, (i) => ({ i })));
    for (const bad of [`[${big.slice(1, -1)},]`, `{"a":${big} 1}`, `{"a" ${big}}`, `{1:${big}}`, `[1 ${big}]`, `[${big.slice(1, -1)},,1]`, `{"a":1,}`.replace('1', big)]) {
      expect(() => JSON.parse(bad)).toThrow();
      await expect(sliced(bad)).rejects.toThrow();
    }
  });
});

describe('count limits', () => {
  const refusal = (body: Record<string, unknown>): GatewayError | undefined => {
    try {
      checkRequestCounts(body);
      return undefined;
    } catch (err) {
      return err as GatewayError;
    }
  };
  const parts = (n: number) => Array.from({ length: n }, () => ({ type: 'text', text: '' }));
  const msgs = (n: number) => Array.from({ length: n }, () => ({ role: 'user', content: 'x' }));

  it('accepts exactly the limits', () => {
    expect(refusal({ messages: msgs(MAX_MESSAGES), tools: Array(MAX_TOOLS).fill({}) })).toBeUndefined();
    expect(refusal({ messages: [{ role: 'user', content: parts(MAX_CONTENT_PARTS) }], system: parts(MAX_CONTENT_PARTS) })).toBeUndefined();
  });

  it('refuses one more message, tool or content part with 400 naming the limit and the field', () => {
    const cases: [Record<string, unknown>, string, number][] = [
      [{ messages: msgs(MAX_MESSAGES + 1) }, 'messages', MAX_MESSAGES],
      [{ messages: msgs(1), tools: Array(MAX_TOOLS + 1).fill({}) }, 'tools', MAX_TOOLS],
      [{ messages: [...msgs(2), { role: 'user', content: parts(MAX_CONTENT_PARTS + 1) }] }, 'messages[2].content', MAX_CONTENT_PARTS],
      [{ messages: msgs(1), system: parts(MAX_CONTENT_PARTS + 1) }, 'system', MAX_CONTENT_PARTS],
    ];
    for (const [body, param, limit] of cases) {
      const e = refusal(body);
      expect(e).toBeInstanceOf(GatewayError);
      expect(e!.status).toBe(400);
      expect(e!.code).toBe('llmgw_invalid_request');
      expect(e!.param).toBe(param);
      expect(e!.message).toContain(`the limit is ${limit}`);
    }
  });
});
