import { beforeEach, describe, expect, it } from 'vitest';
import type { BreakerConfig } from '../config/schema.js';
import { BreakerRegistry, CircuitBreaker, type BreakerState } from './circuit-breaker.js';

const cfg: BreakerConfig = { failureThreshold: 3, cooldownMs: 1_000, halfOpenMaxProbes: 2, successesToClose: 2 };

describe('CircuitBreaker', () => {
  let t: number;
  let breaker: CircuitBreaker;
  let changes: Array<[BreakerState, BreakerState]>;
  const now = () => t;

  const fail = (n: number) => {
    for (let i = 0; i < n; i++) {
      expect(breaker.tryAcquire()).toBe(true);
      breaker.onFailure();
    }
  };
  const openAndCoolDown = () => {
    fail(cfg.failureThreshold);
    t += cfg.cooldownMs;
  };
  /** Half-open: both probe slots (halfOpenMaxProbes) are taken, a third is refused. */
  const takeBothProbes = () => {
    expect(breaker.tryAcquire()).toBe(true);
    expect(breaker.tryAcquire()).toBe(true);
    expect(breaker.tryAcquire()).toBe(false);
  };

  beforeEach(() => {
    t = 10_000;
    breaker = new CircuitBreaker(cfg, now);
    changes = [];
    breaker.onStateChange = (from, to) => changes.push([from, to]);
  });

  it('starts closed and admits everything', () => {
    expect(breaker.state).toBe('closed');
    for (let i = 0; i < 10; i++) expect(breaker.tryAcquire()).toBe(true);
    expect(breaker.retryInMs()).toBe(0);
  });

  it('opens after failureThreshold consecutive failures, not before', () => {
    fail(2);
    expect(breaker.state).toBe('closed');
    fail(1);
    expect(breaker.state).toBe('open');
    expect(changes).toEqual([['closed', 'open']]);
  });

  it('resets the failure count on a success while closed', () => {
    fail(2);
    breaker.onSuccess();
    fail(2);
    expect(breaker.state).toBe('closed');
    fail(1);
    expect(breaker.state).toBe('open');
  });

  it('rejects while open and reports the cooldown left', () => {
    fail(3);
    expect(breaker.tryAcquire()).toBe(false);
    t += 400;
    expect(breaker.tryAcquire()).toBe(false);
    expect(breaker.retryInMs()).toBe(600);
    t += 599;
    expect(breaker.tryAcquire()).toBe(false);
    expect(breaker.retryInMs()).toBe(1);
    expect(breaker.state).toBe('open');
  });

  it('ignores outcomes of attempts started before it opened', () => {
    fail(3);
    breaker.onFailure();
    breaker.onSuccess();
    breaker.release();
    expect(breaker.state).toBe('open');
    expect(breaker.retryInMs()).toBe(1_000);
  });

  it('goes half-open after the cooldown and admits only halfOpenMaxProbes probes', () => {
    openAndCoolDown();
    expect(breaker.retryInMs()).toBe(0);
    takeBothProbes();
    expect(breaker.state).toBe('half-open');
    expect(changes).toEqual([
      ['closed', 'open'],
      ['open', 'half-open'],
    ]);
  });

  it('reading state applies the cooldown lazily without consuming a probe', () => {
    openAndCoolDown();
    expect(breaker.state).toBe('half-open');
    expect(breaker.state).toBe('half-open');
    expect(changes).toEqual([
      ['closed', 'open'],
      ['open', 'half-open'],
    ]);
    takeBothProbes();
  });

  it('closes after successesToClose probe successes', () => {
    openAndCoolDown();
    expect(breaker.tryAcquire()).toBe(true);
    breaker.onSuccess();
    expect(breaker.state).toBe('half-open');
    expect(breaker.tryAcquire()).toBe(true);
    breaker.onSuccess();
    expect(breaker.state).toBe('closed');
    expect(changes).toEqual([
      ['closed', 'open'],
      ['open', 'half-open'],
      ['half-open', 'closed'],
    ]);
    // Closed again with a fresh failure count.
    fail(2);
    expect(breaker.state).toBe('closed');
  });

  it('a probe success frees its slot', () => {
    openAndCoolDown();
    takeBothProbes();
    breaker.onSuccess();
    expect(breaker.state).toBe('half-open');
    expect(breaker.tryAcquire()).toBe(true);
  });

  it('reopens at once on a probe failure, with a fresh cooldown', () => {
    openAndCoolDown();
    t += 5_000; // long after the first cooldown ended
    expect(breaker.tryAcquire()).toBe(true);
    breaker.onFailure();
    expect(breaker.state).toBe('open');
    expect(breaker.tryAcquire()).toBe(false);
    expect(breaker.retryInMs()).toBe(1_000);
    t += 999;
    expect(breaker.tryAcquire()).toBe(false);
    t += 1;
    expect(breaker.tryAcquire()).toBe(true);
    expect(changes).toEqual([
      ['closed', 'open'],
      ['open', 'half-open'],
      ['half-open', 'open'],
      ['open', 'half-open'],
    ]);
  });

  it('release frees a probe slot without changing state', () => {
    openAndCoolDown();
    takeBothProbes();
    breaker.release();
    expect(breaker.state).toBe('half-open');
    expect(breaker.tryAcquire()).toBe(true);
    expect(breaker.tryAcquire()).toBe(false);
    expect(changes.at(-1)).toEqual(['open', 'half-open']);
  });

  it('release never frees more slots than were taken', () => {
    openAndCoolDown();
    breaker.release();
    breaker.release();
    takeBothProbes();
  });

  it('release while closed changes nothing', () => {
    fail(2);
    breaker.release();
    fail(1);
    expect(breaker.state).toBe('open');
  });
});

describe('BreakerRegistry', () => {
  it('keeps one breaker per deployment, created lazily', () => {
    const registry = new BreakerRegistry(cfg, () => 0);
    expect(registry.states()).toEqual({});
    const a = registry.get('openai/gpt-4o');
    expect(registry.get('openai/gpt-4o')).toBe(a);
    expect(registry.get('anthropic/claude')).not.toBe(a);
    expect(registry.states()).toEqual({ 'openai/gpt-4o': 'closed', 'anthropic/claude': 'closed' });
  });

  it('reports transitions with the deployment id and applies cooldowns in states()', () => {
    let t = 0;
    const registry = new BreakerRegistry(cfg, () => t);
    const events: Array<[string, BreakerState, BreakerState]> = [];
    const b = registry.get('sim/sim-small');
    registry.get('sim/sim-large');
    // Set after the breaker was created: still wired.
    registry.onStateChange = (id, from, to) => events.push([id, from, to]);
    for (let i = 0; i < cfg.failureThreshold; i++) b.onFailure();
    expect(registry.states()).toEqual({ 'sim/sim-small': 'open', 'sim/sim-large': 'closed' });
    t += cfg.cooldownMs;
    expect(registry.states()).toEqual({ 'sim/sim-small': 'half-open', 'sim/sim-large': 'closed' });
    expect(events).toEqual([
      ['sim/sim-small', 'closed', 'open'],
      ['sim/sim-small', 'open', 'half-open'],
    ]);
  });
});
