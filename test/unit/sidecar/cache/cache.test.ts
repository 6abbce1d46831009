import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cacheKey, semanticPartition } from '../../../../sidecar/cache/cache-key.js';
import { canonical } from '../../../../sidecar/canonical-json.js';
import { parseCacheControl } from '../../../../sidecar/cache/cache-interceptor.js';
import { CacheStore } from '../../../../sidecar/cache/cache-store.js';
import type { GatewayRequest } from '../../../../sidecar/pipeline/types.js';
import type { Provider } from '../../../../sidecar/providers/provider.js';
import type { ModelRoute } from '../../../../sidecar/routing/router.js';
import { openDatabase } from '../../../../sidecar/storage/database.js';

const answer = (text: string, createdMs: number) => ({ form: 'json' as const, body: Buffer.from(text), createdMs, inputTokens: 3, outputTokens: 5 });
const LIMITS = { maxBytes: 1_000_000, maxEntries: 1000 };

for (const where of ['memory', 'file'] as const) {
  describe(`cache store (${where})`, () => {
    const make = () => new CacheStore(openDatabase(where === 'memory' ? ':memory:' : join(mkdtempSync(join(tmpdir(), 'llmgw-cache-')), 'c.db')));

    it('gets what was set until it expires, and honours a max age', () => {
      const s = make();
      s.set('k', answer('{"a":1}', 1000), 10_000, LIMITS);
      expect(s.get('k', 5000)?.body.toString()).toBe('{"a":1}');
      expect(s.get('k', 5000, 3000)).toBeUndefined(); // 4 s old
      expect(s.get('k', 11_000)).toBeUndefined(); // expired
      expect(s.get('other', 5000)).toBeUndefined();
    });

    it('accounts sizes, evicts the least recently used, and sweeps expired rows', () => {
      const s = make();
      const body = 'x'.repeat(1000);
      const limits = { maxBytes: 3500, maxEntries: 100 };
      s.set('a', answer(body, 1), 60_000, limits);
      s.set('b', answer(body, 2), 60_000, limits);
      s.set('c', answer(body, 3), 60_000, limits);
      expect(s.size.entries).toBe(3);
      s.get('a', 10); // a is now the most recently used
      s.set('d', answer(body, 11), 60_000, limits);
      expect(s.get('b', 12)).toBeUndefined();
      expect(s.get('a', 12)).toBeDefined();
      expect(s.size.bytes).toBeLessThanOrEqual(3500);
      s.set('a', answer(body, 13), 60_000, limits); // replacing keeps the count
      expect(s.size.entries).toBe(3);
      s.set('short', answer('{}', 20), 5, { maxBytes: 1_000_000, maxEntries: 100 });
      expect(s.sweep(100)).toBe(1);
      const byCount = make();
      for (let i = 0; i < 5; i++) byCount.set(`k${i}`, answer('{}', i), 60_000, { maxBytes: 1_000_000, maxEntries: 3 });
      expect(byCount.size.entries).toBe(3);
      expect(byCount.get('k0', 10)).toBeUndefined();
    });

    it('finds the nearest prompt vector of the same partition above the threshold, and drops it with its entry', async () => {
      const s = make();
      const unit = (...xs: number[]) => {
        const n = Math.hypot(...xs);
        return Float32Array.from(xs.map((x) => x / n));
      };
      const limits = { maxBytes: 1_000_000, maxEntries: 2 };
      s.set('a', answer('{"a":1}', 1), 60_000, limits, { partition: 'p', vector: unit(1, 0, 0) });
      s.set('b', answer('{"b":1}', 2), 60_000, limits, { partition: 'p', vector: unit(1, 1, 0) });
      expect(s.size.bytes).toBeGreaterThan(2 * 12); // the vectors count
      expect(await s.nearest({ partition: 'p', vector: unit(1, 0.1, 0) }, 0.9, 10)).toEqual({ key: 'a', similarity: expect.closeTo(0.995, 3) });
      expect((await s.nearest({ partition: 'p', vector: unit(0.2, 1, 0) }, 0.8, 10))?.key).toBe('b');
      expect(await s.nearest({ partition: 'p', vector: unit(0, 0, 1) }, 0.5, 10)).toBeUndefined(); // below the threshold
      expect(await s.nearest({ partition: 'q', vector: unit(1, 0, 0) }, 0.5, 10)).toBeUndefined(); // another partition
      expect(await s.nearest({ partition: 'p', vector: unit(1, 0) }, 0.5, 10)).toBeUndefined(); // another size
      expect((await s.nearest({ partition: 'p', vector: unit(1, 0, 0) }, 0.5, 10, 8.5))?.key).toBe('b'); // a is older than 8.5 ms
      expect(await s.nearest({ partition: 'p', vector: unit(1, 0, 0) }, 0.5, 70_000)).toBeUndefined(); // both expired
      s.get('b', 20);
      s.set('c', answer('{"c":1}', 30), 60_000, limits); // evicts a, the least recently used
      expect((await s.nearest({ partition: 'p', vector: unit(1, 0, 0) }, 0.5, 40))?.key).toBe('b');
      s.set('b', answer('{"b":2}', 50), 60_000, limits); // replaced without a vector: no longer found by one
      expect(await s.nearest({ partition: 'p', vector: unit(1, 1, 0) }, 0.5, 60)).toBeUndefined();
    });

    it('searches a large partition page by page, letting other work run between pages', async () => {
      const s = make();
      const limits = { maxBytes: 100_000_000, maxEntries: 10_000 };
      let seed = 7;
      const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) - 0.5;
      const vectors = Array.from({ length: 1000 }, () => {
        const v = Float32Array.from({ length: 16 }, random);
        const n = Math.hypot(...v);
        return v.map((x) => x / n);
      });
      vectors.forEach((v, i) => s.set(`k${i}`, answer('{}', i), 60_000, limits, { partition: 'p', vector: v }));
      for (const target of [3, 600, 999]) {
        const q = vectors[target]!;
        let ran = false;
        const found = s.nearest({ partition: 'p', vector: q }, 0.9, 2000);
        setImmediate(() => (ran = true));
        expect((await found)?.key).toBe(`k${target}`);
        expect(ran).toBe(true);
      }
    });

    it('answers from memory what it answers from the file: replaced, expired, swept, evicted and large entries alike', () => {
      const s = make();
      const limits = { maxBytes: 100_000_000, maxEntries: 3 };
      s.set('k', answer('{"v":1}', 1), 100, limits);
      expect(s.get('k', 2)?.body.toString()).toBe('{"v":1}');
      s.set('k', answer('{"v":2}', 3), 100, limits); // replaced: the new answer, at once
      expect(s.get('k', 4)?.body.toString()).toBe('{"v":2}');
      expect(s.get('k', 4, 0)).toBeUndefined(); // max-age from memory too
      expect(s.get('k', 103)).toBeUndefined(); // expired
      s.set('gone', answer('{}', 200), 10, limits);
      expect(s.get('gone', 205)).toBeDefined();
      expect(s.sweep(300)).toBeGreaterThanOrEqual(1);
      expect(s.get('gone', 205)).toBeUndefined(); // swept from the file: not served from memory either
      const large = answer('x'.repeat(1_000_000), 400); // larger than memory keeps: read from the file
      s.set('large', large, 10_000, limits);
      expect(s.get('large', 401)?.body.equals(large.body)).toBe(true);
      expect(s.get('large', 402)?.body.length).toBe(1_000_000);
      for (const k of ['a', 'b', 'c']) s.set(k, answer(`"${k}"`, 500), 10_000, limits); // evicts by count
      expect(s.size.entries).toBe(3);
      expect(s.get('large', 501)).toBeUndefined();
      // More than memory holds (8 MiB): every answer still right, the older ones read from the file.
      const many = { maxBytes: 100_000_000, maxEntries: 1000 };
      for (let i = 0; i < 40; i++) s.set(`m${i}`, answer(`${i}`.padEnd(400_000, '.'), 600), 10_000, many);
      for (let i = 0; i < 40; i++) expect(s.get(`m${i}`, 601)?.body.toString().startsWith(`${i}.`)).toBe(true);
    });

    it('keeps its counts true when a write fails part way, and reports each failure', () => {
      const db = openDatabase(where === 'memory' ? ':memory:' : join(mkdtempSync(join(tmpdir(), 'llmgw-cache-')), 'c.db'));
      const errors: unknown[] = [];
      const s = new CacheStore(db, (err) => errors.push(err));
      const limits = { maxBytes: 1_000_000, maxEntries: 2 };
      s.set('a', answer('{"a":1}', 1), 60_000, limits);
      s.set('b', answer('{"b":1}', 2), 60_000, limits);
      const before = s.size;
      // The insert of c succeeds, then evicting a fails: the transaction rolls back as a whole.
      db.exec("CREATE TRIGGER no_delete BEFORE DELETE ON cache_entries BEGIN SELECT RAISE(ABORT, 'disk says no'); END");
      s.set('c', answer('{"c":1}', 3), 60_000, limits);
      expect(errors).toHaveLength(1);
      expect(String(errors[0])).toContain('disk says no');
      expect(s.get('c', 4)).toBeUndefined();
      expect(s.size).toEqual(before);
      s.set('short', answer('{}', 5), 1, { maxBytes: 1_000_000, maxEntries: 10 });
      expect(s.sweep(100)).toBe(0); // the expired row cannot go either
      expect(errors).toHaveLength(2);
      expect(s.size.entries).toBe(3);
      db.exec('DROP TRIGGER no_delete');
      expect(s.sweep(100)).toBe(1);
      expect(s.size).toEqual(before);
    });
  });
}

describe('storage file', () => {
  it('starts the cache again over a table of an earlier layout', () => {
    const db = openDatabase(':memory:');
    db.exec('CREATE TABLE cache_entries (key TEXT PRIMARY KEY, status INTEGER NOT NULL, content_type TEXT NOT NULL, body BLOB NOT NULL, size INTEGER NOT NULL, created_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL, used_ms INTEGER NOT NULL, input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL)');
    db.prepare("INSERT INTO cache_entries VALUES ('k', 200, 'application/json', x'7b7d', 70, 0, 99999, 0, 1, 1)").run();
    const s = new CacheStore(db);
    expect(s.size).toEqual({ entries: 0, bytes: 0 });
    s.set('k', answer('{}', 1), 1000, LIMITS);
    expect(s.get('k', 2)?.form).toBe('json');
  });

  it('moves an unreadable file aside and starts a new one', () => {
    const path = join(mkdtempSync(join(tmpdir(), 'llmgw-corrupt-')), 'llmgw.db');
    writeFileSync(path, 'this is not a database, just some bytes '.repeat(200));
    const s = new CacheStore(openDatabase(path));
    s.set('k', answer('{}', 1), 1000, LIMITS);
    expect(s.get('k', 2)).toBeDefined();
  });
});

describe('cache key', () => {
  const route = { targets: [{ provider: { id: 'openai' } as Provider, model: 'gpt-4o-mini', weight: 1 }] } as unknown as ModelRoute;
  const req = (body: Record<string, unknown>, extra: Partial<GatewayRequest> = {}) =>
    ({ endpoint: 'chat', format: 'openai', model: 'm', headers: {}, body: { model: 'm', messages: [{ role: 'user', content: 'hi' }], ...body }, ...extra }) as unknown as GatewayRequest;

  it('ignores key order and whitespace, and the fields that cannot change the answer', () => {
    expect(canonical(JSON.parse('{ "b": 1, "a": [ {"y":2, "x":1} ] }'))).toBe('{"a":[{"x":1,"y":2}],"b":1}');
    const base = cacheKey(req({}), route, 'ns/svc');
    expect(cacheKey(req({ stream: true, stream_options: { include_usage: true }, user: 'u1', metadata: { a: 1 } }), route, 'ns/svc')).toBe(base);
  });

  it('changes with every parameter that can change the answer, the route and the scope', () => {
    const base = cacheKey(req({}), route, 'ns/svc');
    const variants: Record<string, unknown>[] = [
      { temperature: 0.5 }, { top_p: 0.9 }, { max_tokens: 10 }, { max_completion_tokens: 10 }, { stop: ['x'] }, { seed: 1 }, { n: 2 },
      { response_format: { type: 'json_object' } }, { tools: [{ type: 'function', function: { name: 'f' } }] }, { tool_choice: 'required' },
      { presence_penalty: 1 }, { frequency_penalty: 1 }, { logit_bias: { '1': 1 } }, { reasoning_effort: 'high' }, { some_new_parameter: true },
      { messages: [{ role: 'user', content: 'hi!' }] },
    ];
    const keys = new Set(variants.map((v) => cacheKey(req(v), route, 'ns/svc')));
    expect(keys.size).toBe(variants.length);
    expect(keys.has(base)).toBe(false);
    expect(cacheKey(req({}), route, 'ns/other')).not.toBe(base);
    const other = { targets: [{ provider: { id: 'claude' } as Provider, model: 'claude-haiku-4-5', weight: 1 }] } as unknown as ModelRoute;
    expect(cacheKey(req({}), other, 'ns/svc')).not.toBe(base);
    const anthropic = cacheKey(req({}, { format: 'anthropic' } as Partial<GatewayRequest>), route, 'ns/svc');
    expect(anthropic).not.toBe(base);
    // Anthropic's betas turn features on: they are part of the key.
    const beta = cacheKey(req({}, { format: 'anthropic', headers: { 'anthropic-beta': 'context-1m-2025-08-07' } } as Partial<GatewayRequest>), route, 'ns/svc');
    expect(beta).not.toBe(anthropic);
  });

  it('partitions semantic mode by everything but the prompt', () => {
    const embed = { name: 'embed', targets: [{ provider: { id: 'openai' } as Provider, model: 'text-embedding-3-small', weight: 1 }] } as unknown as ModelRoute;
    const base = semanticPartition(req({}), route, 'ns/svc', embed);
    expect(semanticPartition(req({ messages: [{ role: 'user', content: 'something else' }], user: 'u2', stream: true }), route, 'ns/svc', embed)).toBe(base);
    expect(semanticPartition(req({ temperature: 0 }), route, 'ns/svc', embed)).not.toBe(base);
    expect(semanticPartition(req({}), route, 'ns/other', embed)).not.toBe(base);
    const otherEmbed = { ...embed, targets: [{ provider: { id: 'openai' } as Provider, model: 'text-embedding-3-large', weight: 1 }] } as unknown as ModelRoute;
    expect(semanticPartition(req({}), route, 'ns/svc', otherEmbed)).not.toBe(base);
  });

  it('reads Cache-Control', () => {
    expect(parseCacheControl('no-cache')).toEqual({ noCache: true, noStore: false, maxAgeMs: undefined });
    expect(parseCacheControl('No-Store, max-age=30')).toEqual({ noCache: false, noStore: true, maxAgeMs: 30_000 });
    expect(parseCacheControl(undefined)).toEqual({ noCache: false, noStore: false, maxAgeMs: undefined });
  });
});
