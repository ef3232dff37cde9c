import { describe, expect, it } from 'vitest';
import { nextWebhookState, parseRetryAfter } from './webhook-events.js';

describe('nextWebhookState', () => {
  const p = { maxAttempts: 5, baseDelayMs: 1_000, maxDelayMs: 10_000 };
  const now = 1_000_000;

  it('2xx: delivered; 410: failed at once; maxAttempts reached: failed', () => {
    expect(nextWebhookState({ attempt: 1, statusCode: 204, policy: p, now, random: () => 0.5 })).toEqual({ state: 'delivered', nextAt: now });
    expect(nextWebhookState({ attempt: 1, statusCode: 410, policy: p, now, random: () => 0.5 })).toEqual({ state: 'failed', nextAt: now });
    expect(nextWebhookState({ attempt: 5, statusCode: 500, policy: p, now, random: () => 0.5 })).toEqual({ state: 'failed', nextAt: now });
    expect(nextWebhookState({ attempt: 5, statusCode: null, policy: p, now, random: () => 0.5 })).toEqual({ state: 'failed', nextAt: now });
  });

  it('otherwise pending after a full-jitter exponential backoff capped at maxDelayMs', () => {
    const at = (attempt: number, r: number) => nextWebhookState({ attempt, statusCode: 503, policy: p, now, random: () => r }).nextAt - now;
    expect([1, 2, 3, 4].map((a) => at(a, 1))).toEqual([1_000, 2_000, 4_000, 8_000]);
    expect(nextWebhookState({ attempt: 4, statusCode: 503, policy: { ...p, maxAttempts: 20 }, now, random: () => 1 }).nextAt - now).toBe(8_000);
    expect(nextWebhookState({ attempt: 9, statusCode: 503, policy: { ...p, maxAttempts: 20 }, now, random: () => 1 }).nextAt - now).toBe(10_000);
    expect(at(3, 0.5)).toBe(2_000);
    expect(at(3, 0)).toBe(0);
  });

  it("honours a longer Retry-After, capped at maxDelayMs; ignores a shorter one", () => {
    const next = (retryAfterMs: number) =>
      nextWebhookState({ attempt: 1, statusCode: 429, retryAfterMs, policy: p, now, random: () => 1 }).nextAt - now;
    expect(next(5_000)).toBe(5_000);
    expect(next(500)).toBe(1_000);
    expect(next(3_600_000)).toBe(10_000);
  });

  it('parseRetryAfter reads seconds and HTTP dates', () => {
    expect(parseRetryAfter('30', now)).toBe(30_000);
    expect(parseRetryAfter(new Date(now + 60_000).toUTCString(), now)).toBe(60_000);
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
  });
});
