import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseProviderKeys, ProviderKeys } from '../../../quota-service/provider-keys.js';

const SECRET = 'sk-proj-never-in-a-message-0123456789';

describe('the --provider-keys file', () => {
  it('hands a namespace only the keys its policy names, "*" to every namespace, nothing by default', () => {
    const path = join(mkdtempSync(join(tmpdir(), 'llmgw-keys-')), 'keys.yaml');
    writeFileSync(path, `keys:\n  openai: ${SECRET}\n  claude: sk-ant-other\nnamespaces:\n  "*": [openai]\n  team-a: [claude]\n`);
    const keys = new ProviderKeys(path);
    try {
      expect(keys.forNamespace('team-a', ['openai', 'claude'])).toEqual({ openai: SECRET, claude: 'sk-ant-other' });
      expect(keys.forNamespace('team-b', ['openai', 'claude'])).toEqual({ openai: SECRET });
      // Names of Object.prototype's properties are namespace and key names like any other.
      expect(keys.forNamespace('constructor', ['constructor', 'toString', 'openai'])).toEqual({ openai: SECRET });
    } finally {
      keys.close();
    }
  });

  it('refuses a file without a policy, or whose policy names a key it does not hold', () => {
    expect(() => parseProviderKeys(`keys:\n  openai: ${SECRET}\n`)).toThrow(/namespaces/);
    expect(() => parseProviderKeys(`keys:\n  openai: ${SECRET}\nnamespaces:\n  a: [claude]\n`)).toThrow(/namespaces.a: unknown key name "claude"/);
  });

  it('says where a YAML error is without quoting the line, which may hold a key', () => {
    let message = '';
    try {
      parseProviderKeys(`keys:\n  openai: ${SECRET}: broken\nnamespaces: {}\n`);
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/^not valid YAML \(\w+\) at line 2$/);
    expect(message).not.toContain('sk-');
  });
});
