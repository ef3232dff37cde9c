import { describe, expect, it } from 'vitest';
import { backoffDelay } from './backoff.js';

const opts = { baseDelayMs: 100, maxDelayMs: 5_000 };
const top = () => 0.999;

describe('backoffDelay', () => {
  it('doubles the ceiling with each retry', () => {
    expect(backoffDelay(0, opts, () => 0.5)).toBe(50);
    expect(backoffDelay(1, opts, () => 0.5)).toBe(100);
    expect(backoffDelay(2, opts, () => 0.5)).toBe(200);
    expect(backoffDelay(3, opts, () => 0.5)).toBe(400);
  });

  it('caps the ceiling at maxDelayMs', () => {
    expect(backoffDelay(5, opts, () => 0.5)).toBe(1_600);
    expect(backoffDelay(6, opts, () => 0.5)).toBe(2_500);
    expect(backoffDelay(20, opts, () => 0.5)).toBe(2_500);
  });

  it('uses full jitter: anywhere from 0 up to (not reaching) the ceiling', () => {
    expect(backoffDelay(2, opts, () => 0)).toBe(0);
    expect(backoffDelay(2, opts, top)).toBeCloseTo(399.6, 6);
    expect(backoffDelay(2, opts, top)).toBeLessThan(400);
    expect(backoffDelay(10, opts, top)).toBeCloseTo(4_995, 6);
  });

  it('stays within [0, ceiling) for real randomness', () => {
    for (let i = 0; i < 200; i++) {
      const d = backoffDelay(3, opts);
      expect(d).toBeGreaterThanOrEqual(0);
      expect(d).toBeLessThan(800);
    }
  });

  it('never overflows for huge retry indexes', () => {
    for (const index of [1023, 1024, 5_000, Number.MAX_SAFE_INTEGER, Infinity]) {
      const d = backoffDelay(index, opts, top);
      expect(Number.isFinite(d)).toBe(true);
      expect(d).toBeCloseTo(4_995, 6);
    }
    expect(backoffDelay(2_000, { baseDelayMs: 1e300, maxDelayMs: 1e301 }, () => 0.5)).toBe(5e300);
  });

  it('is 0 when the base or the cap is 0, never NaN', () => {
    expect(backoffDelay(5_000, { baseDelayMs: 0, maxDelayMs: 5_000 }, top)).toBe(0);
    expect(backoffDelay(3, { baseDelayMs: 100, maxDelayMs: 0 }, top)).toBe(0);
  });

  it('treats a cap below the base as the ceiling', () => {
    expect(backoffDelay(0, { baseDelayMs: 1_000, maxDelayMs: 300 }, () => 0.5)).toBe(150);
  });
});
