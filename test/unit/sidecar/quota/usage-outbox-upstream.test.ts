// What served a request travels with its usage record (provider type and upstream model, for the quota
// service's pricing): kept through the in-flight log and the outbox, and records split by it.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { recordModel, UsageOutbox } from '../../../../sidecar/quota/usage-outbox.js';
import { openDatabase } from '../../../../sidecar/storage/database.js';

describe('usage records name what served them', () => {
  it('carries provider type and upstream model to delivery, in separate records per upstream', () => {
    const path = join(mkdtempSync(join(tmpdir(), 'llmgw-outbox-')), 'llmgw.db');
    const outbox = new UsageOutbox(openDatabase(path));
    outbox.append('interactive', 100, 1_000, recordModel('gpt-4o', 'openai', 'gpt-4o-2024-08-06'));
    outbox.append('interactive', 50, 1_200, recordModel('gpt-4o', 'openai', 'gpt-4o-2024-08-06'));
    // A fallback served the same app model from another provider.
    outbox.append('interactive', 30, 1_300, recordModel('gpt-4o', 'anthropic', 'claude-sonnet-4-5'));
    // Unknown (no answer): the app's model only.
    outbox.append('interactive', 7, 1_400, recordModel('gpt-4o', undefined, undefined));
    const records = outbox.pending('interactive').map(({ tokens, model, providerType, upstreamModel }) => ({ tokens, model, providerType, upstreamModel }));
    expect(records).toEqual([
      { tokens: 150, model: 'gpt-4o', providerType: 'openai', upstreamModel: 'gpt-4o-2024-08-06' },
      { tokens: 30, model: 'gpt-4o', providerType: 'anthropic', upstreamModel: 'claude-sonnet-4-5' },
      { tokens: 7, model: 'gpt-4o', providerType: undefined, upstreamModel: undefined },
    ]);
    outbox.close();
  });

  it('keeps it in the SQLite file across a restart', () => {
    const path = join(mkdtempSync(join(tmpdir(), 'llmgw-outbox-')), 'llmgw.db');
    const db = openDatabase(path);
    const outbox = new UsageOutbox(db);
    const entry = outbox.begin('batch', 2_000, 'claude', undefined, 10);
    outbox.append('batch', 40, 2_000, recordModel('claude', 'anthropic', 'claude-haiku-4-5-20251001'), undefined, entry);
    outbox.checkpointNow();
    db.close();
    const again = new UsageOutbox(openDatabase(path));
    expect(again.pending('batch')).toMatchObject([{ tokens: 40, model: 'claude', providerType: 'anthropic', upstreamModel: 'claude-haiku-4-5-20251001' }]);
    again.close();
  });
});
