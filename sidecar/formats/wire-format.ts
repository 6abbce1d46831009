// The two wire formats the sidecar speaks, to apps and to providers.
import type { ProviderType } from '../config/schema.js';

export type WireFormat = 'openai' | 'anthropic';

export const providerFormat = (type: ProviderType): WireFormat => (type === 'anthropic' ? 'anthropic' : 'openai');
