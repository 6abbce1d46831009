import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../common/config/config-error.js';
import { validateInjectorConfig } from '../../../injector-webhook/config.js';

const valid = { image: 'llmgw:1', releaseNamespace: 'llm-gateway' };

function problems(raw: unknown): string[] {
  try {
    validateInjectorConfig(raw, 'injector.yaml');
  } catch (err) {
    if (err instanceof ConfigError) return err.message.split('\n');
    throw err;
  }
  return [];
}

describe('injector config problems', () => {
  it('accepts a minimal config and fills in the defaults', () => {
    const c = validateInjectorConfig(valid, 'injector.yaml');
    expect(c.ports).toEqual({ data: 4000, status: 4001 });
    expect(c.onInvalidSidecarConfig).toBe('deny');
  });

  it('names every problem with what was expected and what was there, never zod\'s bare "Invalid input"', () => {
    const lines = problems({ ...valid, imagePullPolicy: 'Sometimes', ports: { data: 'x' }, preStopSeconds: 900, injectJob: true });
    const text = lines.join('\n');
    expect(text).not.toContain('Invalid input');
    expect(text).toMatch(/imagePullPolicy: must be one of "Always", "IfNotPresent", "Never" \(got "Sometimes"\)/);
    expect(text).toMatch(/ports\.data: expected a number, got the string "x"/);
    expect(text).toMatch(/preStopSeconds: .*300/);
    expect(text).toMatch(/unknown key "injectJob" \(did you mean "injectJobs"\?\)/);
  });

  it('says a required key is missing', () => {
    expect(problems({ image: 'llmgw:1' }).join('\n')).toMatch(/releaseNamespace: required/);
  });
});
