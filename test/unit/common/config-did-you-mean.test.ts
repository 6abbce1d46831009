// "Did you mean" suggests a known name only when the unknown one is close enough to be a typo of it.
import { describe, expect, it } from 'vitest';
import { closestName, didYouMean } from '../../../common/config/did-you-mean.js';

describe('did you mean', () => {
  it('suggests the closest known name within a third of the length', () => {
    expect(didYouMean('opnai', ['openai', 'anthropic'])).toBe('; did you mean "openai"?');
    expect(didYouMean('claude-haiku-45', ['claude-haiku-4-5', 'gpt-4o'])).toBe('; did you mean "claude-haiku-4-5"?');
    expect(didYouMean('GPT-4O', ['gpt-4o'])).toBe('; did you mean "gpt-4o"?');
  });

  it('suggests nothing when no known name is close', () => {
    expect(didYouMean('mistral', ['openai', 'anthropic'])).toBe('');
    expect(didYouMean('x', [])).toBe('');
  });

  it('counts two neighbouring letters typed the wrong way round as one slip', () => {
    expect(closestName('cahce', ['cache', 'quota'])).toBe('cache');
    expect(closestName('targtes', ['targets', 'fallbacks'])).toBe('targets');
    expect(closestName('qouta', ['quota'])).toBe('quota');
    expect(closestName('atce', ['cache'])).toBeUndefined();
  });

  it('picks the closest of several candidates', () => {
    expect(closestName('retires', ['retry', 'retries', 'server'])).toBe('retries');
    expect(closestName('maxConection', ['maxConnections', 'maxResponseBytes'])).toBe('maxConnections');
  });
});
