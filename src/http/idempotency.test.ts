import { describe, expect, it } from 'vitest';
import { isFinalStatus } from './idempotency.js';

describe('isFinalStatus: which answers an Idempotency-Key keeps', () => {
  it('keeps 2xx and the 4xx a retry would repeat', () => {
    for (const status of [200, 201, 204, 400, 404, 413, 422]) expect(isFinalStatus(status), String(status)).toBe(true);
  });
  it('releases the key on answers a retry may change: 401, 402 (budget raised), 403, 408, 409, 429 and 5xx', () => {
    for (const status of [401, 402, 403, 408, 409, 429, 500, 502, 503, 504, 301, 101]) expect(isFinalStatus(status), String(status)).toBe(false);
  });
});
