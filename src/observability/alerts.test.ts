import { afterEach, describe, expect, it, vi } from 'vitest';
import { alertRulesSchema } from '../config/alerts-schema.js';
import { type AlertSignals, AlertEngine } from './alerts.js';
import { createLogger } from './logger.js';

function setup(rawRules: unknown[], signals: AlertSignals) {
  let now = 1_700_000_000_000;
  const sent: Array<{ type: string; payload: Record<string, unknown> }> = [];
  const engine = new AlertEngine({
    rules: alertRulesSchema.parse(rawRules),
    signals,
    webhook: {
      async send(type, payload) {
        sent.push({ type, payload });
        return true;
      },
    },
    log: createLogger('silent'),
    evaluateMs: 1_000,
    now: () => now,
  });
  return {
    engine,
    sent,
    advance(ms: number) {
      now += ms;
      return engine.evaluate();
    },
    async flushed() {
      await engine.stop();
      return sent;
    },
  };
}

describe('AlertEngine', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('fires once while the condition holds, de-duplicates, then sends one resolved message', async () => {
    let p95 = 900;
    const t = setup([{ name: 'slow-premium', type: 'latency_p95', tier: 'premium', thresholdMs: 500 }], {
      latency: (q, tier) => (q === 0.95 && tier === 'premium' ? { ms: p95, requests: 100 } : { ms: undefined, requests: 0 }),
    });
    expect(t.advance(0).map((e) => e.type)).toEqual(['alert.firing']);
    for (let i = 0; i < 5; i++) expect(t.advance(1_000)).toEqual([]);
    expect(t.engine.firing()).toHaveLength(1);
    p95 = 200;
    const resolved = t.advance(1_000);
    expect(resolved).toHaveLength(1);
    expect(resolved[0]).toMatchObject({ type: 'alert.resolved', alert: { id: 'slow-premium{tier=premium}', rule: 'slow-premium', labels: { tier: 'premium' }, value: 200, threshold: 500 } });
    expect(resolved[0]!.alert.resolved_at).toBeDefined();
    expect(t.advance(1_000)).toEqual([]);
    const sent = await t.flushed();
    expect(sent.map((s) => s.type)).toEqual(['alert.firing', 'alert.resolved']);
    expect(sent[0]!.payload).toMatchObject({ alert: { kind: 'latency_p95', value: 900, severity: 'warning' } });
    expect(t.engine.firing()).toEqual([]);
    expect(t.engine.recent().map((e) => e.type)).toEqual(['alert.resolved', 'alert.firing']);
  });

  it('waits forSeconds before firing and before resolving; a blip shorter than that sends nothing', () => {
    let rate = 0.5;
    const t = setup([{ name: 'errors', type: 'error_rate', threshold: 0.1, forSeconds: 30 }], {
      tiers: () => ['none'],
      errorRate: () => ({ rate, requests: 50 }),
    });
    expect(t.advance(0)).toEqual([]);
    expect(t.advance(20_000)).toEqual([]);
    rate = 0; // a blip: the pending alert is dropped
    expect(t.advance(5_000)).toEqual([]);
    rate = 0.5;
    expect(t.advance(1_000)).toEqual([]);
    expect(t.advance(29_000)).toEqual([]);
    expect(t.advance(1_000).map((e) => e.type)).toEqual(['alert.firing']);
    rate = 0;
    expect(t.advance(10_000)).toEqual([]);
    rate = 0.5; // back before forSeconds passed: still the same alert, nothing sent
    expect(t.advance(10_000)).toEqual([]);
    rate = 0;
    expect(t.advance(1_000)).toEqual([]);
    expect(t.advance(29_000)).toEqual([]);
    expect(t.advance(1_000).map((e) => e.type)).toEqual(['alert.resolved']);
  });

  it('gives no verdict below minRequests: neither fires nor resolves', () => {
    let sample = { rate: 1, requests: 5 };
    const t = setup([{ name: 'errors', type: 'error_rate', tier: 'none', threshold: 0.1, minRequests: 20 }], { errorRate: () => sample });
    expect(t.advance(0)).toEqual([]);
    sample = { rate: 1, requests: 40 };
    expect(t.advance(1_000).map((e) => e.type)).toEqual(['alert.firing']);
    sample = { rate: 0, requests: 3 };
    expect(t.advance(1_000)).toEqual([]);
    expect(t.engine.firing()).toHaveLength(1);
  });

  it('makes one alert per instance: each open breaker, budget over the threshold, drifting feature and abuse flag', () => {
    let open = ['a@sim', 'b@sim'];
    const t = setup(
      [
        { name: 'breakers', type: 'breaker_open', severity: 'critical' },
        { name: 'budget-80', type: 'budget', threshold: 0.8 },
        { name: 'drift', type: 'drift', threshold: 0.2 },
        { name: 'abuse', type: 'abuse', kind: 'token_spike' },
      ],
      {
        openBreakers: () => open,
        budgets: () => [
          { key: 'k1', scope: 'tenant', id: 'acme', period: 'month', limit: 100, used: 85 },
          { key: 'k2', scope: 'tenant', id: 'globex', period: 'month', limit: 100, used: 10 },
        ],
        drift: () => [
          { route: 'chat', feature: 'length', score: 0.5 },
          { route: 'chat', feature: 'script', score: 0.01 },
          { route: 'chat', feature: 'centroid', score: null },
        ],
        abuse: () => [
          { kind: 'token_spike', subject: 'key', id: 'key_1', tenant: 'acme' },
          { kind: 'long_prompt', subject: 'user', id: 'u1' },
        ],
      },
    );
    const ids = t.advance(0).map((e) => e.alert.id).sort();
    expect(ids).toEqual([
      'abuse{id=key_1,kind=token_spike,subject=key,tenant=acme}',
      'breakers{deployment=a@sim}',
      'breakers{deployment=b@sim}',
      'budget-80{id=acme,period=month,scope=tenant}',
      'drift{feature=length,route=chat}',
    ]);
    open = ['a@sim'];
    const next = t.advance(1_000);
    expect(next.map((e) => [e.type, e.alert.id])).toEqual([['alert.resolved', 'breakers{deployment=b@sim}']]);
  });

  it('evaluates nothing in a process that does not hold the lease', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] }); // the evaluation timer
    let leader = false;
    let asked = 0;
    const sent: string[] = [];
    const engine = new AlertEngine({
      rules: alertRulesSchema.parse([{ name: 'breakers', type: 'breaker_open' }]),
      signals: { openBreakers: () => ['a@sim'] },
      webhook: { send: async (type) => (sent.push(type), true) },
      log: createLogger('silent'),
      evaluateMs: 10,
      isLeader: async () => (asked++, leader),
    });
    engine.start();
    await vi.advanceTimersByTimeAsync(50);
    expect(asked).toBe(5); // five evaluations came and asked for the lease...
    expect(sent).toEqual([]); // ...and, without it, sent nothing
    leader = true;
    await vi.advanceTimersByTimeAsync(10);
    expect(asked).toBe(6);
    await engine.stop();
    expect(sent).toEqual(['alert.firing']);
  });

  it('refuses rules with a clear error: duplicate names, bad thresholds', () => {
    const dup = alertRulesSchema.safeParse([
      { name: 'x', type: 'breaker_open' },
      { name: 'x', type: 'breaker_open' },
    ]);
    expect(dup.success).toBe(false);
    expect(dup.error!.issues[0]).toMatchObject({ path: [1, 'name'], message: "duplicate rule name 'x'" });
    const bad = alertRulesSchema.safeParse([{ name: 'e', type: 'error_rate', threshold: 2 }]);
    expect(bad.success).toBe(false);
    expect(bad.error!.issues[0]!.path).toEqual([0, 'threshold']);
  });
});
