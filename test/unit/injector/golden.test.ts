// Golden tests of the injector's decision and patch: every folder under test/fixtures/injector holds a
// pod (pod.json), optionally the review's circumstances (case.json), and the expected answer
// (expected.json: allowed, the decoded patch, warnings, status). Cases are discovered from the folder; a
// case without its golden, or a golden without its case, fails. UPDATE_GOLDEN=1 rewrites the goldens.
// Every patch is applied to its pod, the result checked against the Kubernetes Pod schema, and injected
// pods are reviewed again to prove that injection is idempotent.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import jsonpatch from 'fast-json-patch';
import { Pod as PodModel } from 'kubernetes-models/v1';
import { describe, expect, it } from 'vitest';
import { review } from '../../../injector-webhook/admission.js';
import { configFor, reviewOf, type Case } from '../../helpers/admission.js';

const DIR = join(import.meta.dirname, '../../fixtures/injector');
const UPDATE = process.env.UPDATE_GOLDEN === '1';

function decode(patch: string | undefined): unknown[] | null {
  return patch === undefined ? null : (JSON.parse(Buffer.from(patch, 'base64').toString('utf8')) as unknown[]);
}

const cases = readdirSync(DIR, { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .map((d) => d.name)
  .sort();

describe('injector golden cases', () => {
  it('has at least 15 cases, each with its input and its golden', () => {
    expect(cases.length).toBeGreaterThanOrEqual(15);
    for (const name of cases) {
      expect(existsSync(join(DIR, name, 'pod.json')), `${name}/pod.json`).toBe(true);
      if (!UPDATE) expect(existsSync(join(DIR, name, 'expected.json')), `${name}/expected.json is missing (UPDATE_GOLDEN=1 writes it)`).toBe(true);
    }
    // Nothing else in the folder: a golden left behind by a renamed case is stale.
    const stray = readdirSync(DIR).filter((f) => !cases.includes(f));
    expect(stray).toEqual([]);
    for (const name of cases) {
      const files = readdirSync(join(DIR, name)).filter((f) => !['pod.json', 'case.json', 'expected.json'].includes(f));
      expect(files, `unexpected files in ${name}`).toEqual([]);
    }
  });

  for (const name of cases) {
    it(name, () => {
      const pod = JSON.parse(readFileSync(join(DIR, name, 'pod.json'), 'utf8')) as Record<string, unknown>;
      const c: Case = existsSync(join(DIR, name, 'case.json')) ? (JSON.parse(readFileSync(join(DIR, name, 'case.json'), 'utf8')) as Case) : {};
      const config = configFor(c);
      const { answer } = review(reviewOf(pod, c), config, c.namespaceAnnotations ?? {});
      expect(answer.response.uid).toBe('b7e2a8f0-0000-4000-8000-000000000001');
      const ops = decode(answer.response.patch);
      const got = { allowed: answer.response.allowed, patch: ops, warnings: answer.response.warnings ?? [], ...(answer.response.status ? { status: answer.response.status } : {}) };
      const golden = join(DIR, name, 'expected.json');
      if (UPDATE) writeFileSync(golden, `${JSON.stringify(got, null, 2)}\n`);
      expect(got).toEqual(JSON.parse(readFileSync(golden, 'utf8')));
      if (ops === null) return;

      // The patch applies cleanly (every parent exists; JSON-Pointer escaping holds) and yields a valid pod.
      const patched = jsonpatch.applyPatch(structuredClone(pod), ops as jsonpatch.Operation[], true, false).newDocument as Record<string, unknown>;
      new PodModel(patched as ConstructorParameters<typeof PodModel>[0]).validate();
      // The patch only adds: everything the pod had is still there, unchanged.
      for (const op of ops as { op: string }[]) expect(op.op).toBe('add');

      // Reviewed again, the patched pod is left as it is.
      const again = review(reviewOf(patched, c), config, c.namespaceAnnotations ?? {}).answer.response;
      expect(again.allowed).toBe(true);
      expect(again.patch).toBeUndefined();
    });
  }
});
