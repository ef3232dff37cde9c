import { describe, expect, it } from 'vitest';
import { GatewayError } from '../errors.js';
import type { RequestContext } from '../pipeline/context.js';
import { GatewayMetrics } from './metrics.js';
import { gatewayOverheadMs } from './request-metrics.js';

const dep = { id: 'sim-small@up', model: 'sim-small' };

/** The parts of a request context the metrics read. */
function ctx(over: Partial<Record<keyof RequestContext, unknown>> = {}): RequestContext {
  return {
    route: '/v1/chat/completions',
    model: { name: 'sim-small' },
    attempts: [],
    auth: { tenantId: 'acme' },
    ...over,
  } as unknown as RequestContext;
}

describe('gateway overhead', () => {
  it('is the latency minus the upstream attempts for a JSON answer', () => {
    const c = ctx({ servedBy: dep, attempts: [{ deployment: dep.id, outcome: 'ok', durationMs: 40 }], result: { kind: 'chat' } });
    expect(gatewayOverheadMs(c, 40.25)).toBeCloseTo(0.25, 6);
  });

  it('stops at the first token for a stream', () => {
    const c = ctx({ servedBy: dep, attempts: [{ deployment: dep.id, outcome: 'ok', durationMs: 49.8 }], result: { kind: 'stream' }, ttftMs: 50 });
    expect(gatewayOverheadMs(c, 2_000)).toBeCloseTo(0.2, 6);
  });

  it('counts escalations and skipped open breakers, and leaves out retries, cache answers and failures', () => {
    const ok = (ms: number) => ({ deployment: dep.id, outcome: 'ok', durationMs: ms });
    const skipped = { deployment: 'x@y', outcome: 'circuit_open', durationMs: 0 };
    expect(gatewayOverheadMs(ctx({ servedBy: dep, attempts: [ok(10), ok(20)], result: { kind: 'chat' } }), 31)).toBeCloseTo(1, 6);
    expect(gatewayOverheadMs(ctx({ servedBy: dep, attempts: [skipped, ok(10)], result: { kind: 'chat' } }), 10.5)).toBeCloseTo(0.5, 6);
    const retried = [{ deployment: dep.id, outcome: 'http_500', durationMs: 3 }, ok(10)];
    expect(gatewayOverheadMs(ctx({ servedBy: dep, attempts: retried, result: { kind: 'chat' } }), 200)).toBeUndefined();
    expect(gatewayOverheadMs(ctx({ servedBy: dep, attempts: [ok(10)], cache: { outcome: 'stale', served: true } }), 20)).toBeUndefined();
    expect(gatewayOverheadMs(ctx({ attempts: [{ deployment: dep.id, outcome: 'timeout', durationMs: 30 }] }), 31)).toBeUndefined();
  });
});

describe('request metrics', () => {
  it('labels requests by route, model, status, tier and deployment', async () => {
    const m = new GatewayMetrics({ defaultMetrics: false });
    const routing = { tier: 1, tiers: [{ name: 'small' }, { name: 'large' }] };
    m.observeRequest(ctx({ model: { name: 'auto' }, routing, servedBy: dep, attempts: [{ deployment: dep.id, outcome: 'ok', durationMs: 5 }] }), 200, 0.006);
    m.observeRequest(ctx({ cache: { outcome: 'hit', served: true }, savedPico: 2e9 }), 200, 0.001);
    m.observeRequest(ctx({ model: undefined, error: new GatewayError('model_not_found', 'no') }), 404, 0.001);
    const text = await m.registry.metrics();
    expect(text).toContain('tollgate_requests_total{route="/v1/chat/completions",model="auto",status="200",tier="large",deployment="sim-small@up"} 1');
    expect(text).toContain('tollgate_requests_total{route="/v1/chat/completions",model="sim-small",status="200",tier="none",deployment="cache"} 1');
    expect(text).toContain('tollgate_errors_total{route="/v1/chat/completions",model="unknown",code="model_not_found",tier="none",deployment="none",status="404"} 1');
    expect(text).toContain('tollgate_cache_requests_total{model="sim-small",outcome="hit"} 1');
    expect(text).toContain('tollgate_cache_saved_usd_total{model="sim-small"} 0.002');
    expect(text).toMatch(/tollgate_gateway_overhead_seconds_count\{route="\/v1\/chat\/completions"\} 1\n/);
  });

  it('records time to first token of upstream streams only', async () => {
    const m = new GatewayMetrics({ defaultMetrics: false });
    const attempts = [{ deployment: dep.id, outcome: 'ok', durationMs: 120 }];
    m.observeRequest(ctx({ servedBy: dep, attempts, result: { kind: 'stream' }, ttftMs: 120.5 }), 200, 3);
    m.observeRequest(ctx({ result: { kind: 'stream' }, cache: { outcome: 'hit', served: true } }), 200, 0.002);
    const text = await m.registry.metrics(); // one stream: the replayed cache hit has no upstream first token
    expect(text).toContain('tollgate_time_to_first_token_seconds_count{route="/v1/chat/completions",tier="none",model="sim-small"} 1');
    expect(text).toContain('tollgate_time_to_first_token_seconds_sum{route="/v1/chat/completions",tier="none",model="sim-small"} 0.1205');
    expect(text).toContain('tollgate_gateway_overhead_seconds_sum{route="/v1/chat/completions"} 0.0005');
  });

  it("counts the gateway's policy refusals by reason, not upstream's", async () => {
    const m = new GatewayMetrics({ defaultMetrics: false });
    for (const code of ['rate_limit_exceeded', 'rate_limit_exceeded', 'budget_exceeded', 'access_disabled', 'upstream_rate_limited', 'upstream_error'] as const) {
      m.observeRequest(ctx({ error: new GatewayError(code, 'x') }), 429, 0.001);
    }
    m.observeRequest(ctx({ streamError: new GatewayError('budget_exceeded', 'cut off') }), 200, 1);
    const text = await m.registry.metrics();
    expect(text).toContain('tollgate_refusals_total{reason="rate_limit_exceeded"} 2');
    expect(text).toContain('tollgate_refusals_total{reason="budget_exceeded"} 2');
    expect(text).toContain('tollgate_refusals_total{reason="access_disabled"} 1');
    expect(text).not.toMatch(/tollgate_refusals_total\{reason="upstream/);
  });

  it('counts billed tokens (discarded escalation answers included) and cost by tenant; cache hits use no tokens', async () => {
    const m = new GatewayMetrics({ defaultMetrics: false, tenantLabels: 5 });
    const usage = { prompt_tokens: 10, completion_tokens: 20, total_tokens: 30 };
    const answered = { servedBy: dep, usage, costPico: 3e9, discarded: { promptTokens: 10, completionTokens: 5, costPico: 1e9 } };
    m.observeRequest(ctx(answered), 200, 0.01);
    m.observeRequest(ctx(answered), 200, 0.01);
    m.observeRequest(ctx({ usage, cache: { outcome: 'semantic', served: true }, costPico: 0 }), 200, 0.01);
    const text = await m.registry.metrics();
    // The first request was __other__ (a tenant is named from its second request on).
    expect(text).toContain('tollgate_tokens_total{tenant="__other__",direction="in"} 20');
    expect(text).toContain('tollgate_tokens_total{tenant="acme",direction="in"} 20');
    expect(text).toContain('tollgate_tokens_total{tenant="acme",direction="out"} 25');
    expect(text).toContain('tollgate_cost_usd_total{tenant="acme"} 0.003');
  });
});
