/**
 * One tenant cannot open a deployment's breaker for everyone (issue 14, item 3; found in review:
 * a tenant's own timeouts, a huge max_tokens on a slow model, opened it for every tenant).
 */
import { describe, expect, it } from 'vitest';
import { CircuitBreaker } from './circuit-breaker.js';

const cfg = { failureThreshold: 3, cooldownMs: 1_000, halfOpenMaxProbes: 1, successesToClose: 1 };

function attempt(b: CircuitBreaker, ok: boolean, caller?: string): void {
  expect(b.tryAcquire()).toBe(true);
  if (ok) b.onSuccess(caller);
  else b.onFailure(caller);
}

/** Attempts in order, written `+c` (a success of caller c) or `-c` (a failure of c). */
function attempts(b: CircuitBreaker, ...steps: string[]): void {
  for (const step of steps) attempt(b, step.startsWith('+'), step.slice(1));
}

describe('circuit breaker: failures by caller', () => {
  it('once two tenants have called it, one tenant failing alone never opens it', () => {
    const b = new CircuitBreaker(cfg, () => 0);
    attempt(b, true, 'b');
    for (let i = 0; i < 20; i++) attempt(b, false, 'a');
    expect(b.state).toBe('closed');
  });

  it('a streak with failures of two tenants opens it at the threshold', () => {
    const b = new CircuitBreaker(cfg, () => 0);
    attempts(b, '+b', '-a', '-a');
    expect(b.state).toBe('closed');
    attempt(b, false, 'b');
    expect(b.state).toBe('open');
  });

  it('with a single caller (or none named), the plain threshold applies', () => {
    const one = new CircuitBreaker(cfg, () => 0);
    for (let i = 0; i < 3; i++) attempt(one, false, 'a');
    expect(one.state).toBe('open');
    const anonymous = new CircuitBreaker(cfg, () => 0);
    for (let i = 0; i < 3; i++) attempt(anonymous, false);
    expect(anonymous.state).toBe('open');
  });

  it('a success ends the streak and its callers', () => {
    const b = new CircuitBreaker(cfg, () => 0);
    attempts(b, '-a', '-b', '+c', '-a', '-a', '-a');
    expect(b.state).toBe('closed'); // three failures, all of one tenant, after three tenants called
    attempt(b, false, 'c');
    expect(b.state).toBe('open');
  });

  it('the callers seen are forgotten when it closes again', () => {
    let now = 0;
    const b = new CircuitBreaker(cfg, () => now);
    attempts(b, '-a', '-b', '-a');
    expect(b.state).toBe('open');
    now = 1_000;
    attempt(b, true, 'a'); // the half-open probe closes it
    expect(b.state).toBe('closed');
    for (let i = 0; i < 3; i++) attempt(b, false, 'a');
    expect(b.state).toBe('open'); // only 'a' has called since it closed: the plain threshold
  });
});
