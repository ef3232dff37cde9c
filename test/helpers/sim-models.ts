/**
 * Simulated models for unit tests of the simulator and what runs on it: models that answer at
 * once (no time to first token, no streaming delay) unless a test asks otherwise.
 */
import type { SimModelConfig } from '../../src/config/schema.js';

/** An instant chat model (unless `over` says otherwise) of the given answer length and vector size. */
export function instantModel(over: Partial<SimModelConfig> & Pick<SimModelConfig, 'outputTokens' | 'dimensions'>): SimModelConfig {
  return { type: 'chat', ttftMs: { median: 0, p95: 0 }, tokensPerSecond: 0, ...over };
}
