/**
 * Request features for the routing unit tests (src/routing/classifier.test.ts, rules.test.ts):
 * a short one-turn question with no signal set, with the fields a test gives replaced.
 */
import type { RequestFeatures } from '../../src/routing/types.js';

export function requestFeatures(over: Partial<RequestFeatures> = {}): RequestFeatures {
  return {
    promptChars: 40,
    promptTokens: 10,
    lastUserChars: 40,
    messages: 1,
    userTurns: 1,
    hasSystem: false,
    hasCode: false,
    hasMath: false,
    asksReasoning: false,
    asksStructure: false,
    hasTools: false,
    jsonMode: false,
    maxTokens: null,
    hasImages: false,
    ...over,
  };
}
