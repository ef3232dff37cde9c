/**
 * What one ended request adds to the metrics (called once per request by settle, through
 * GatewayMetrics.observeRequest). Every label value is bounded: route, configured model or tiered
 * route name (else `unknown`), HTTP status, tier name, deployment id (`cache`, `none`), error code,
 * and tenant ids only for the few top spenders (tenant-labels.ts). Child metrics are memoised by
 * their label values, so a request costs a few map lookups, not a label object per metric.
 */
import type { Counter, Histogram } from 'prom-client';
import type { RequestContext } from '../pipeline/context.js';
import type { GatewayMetrics } from './metrics.js';

/** Error codes that are the gateway's policy refusing a request (tollgate_refusals_total reasons). */
export const REFUSAL_REASONS: ReadonlySet<string> = new Set([
  'rate_limit_exceeded',
  'budget_exceeded',
  'budget_unavailable',
  'access_disabled',
  'model_disabled',
  'model_not_allowed',
  'abuse_throttled',
]);

type CounterChild = Counter.Internal;
type HistogramChild = Histogram.Internal<string>;

interface RequestChildren {
  requests: CounterChild;
  duration: HistogramChild;
}

interface TenantChildren {
  tokensIn: CounterChild;
  tokensOut: CounterChild;
  cost: CounterChild;
}

const PICO = 1e12;

/** A memo of child metrics by key; the keys come from bounded label values, so it stays small. */
function memo<T>(make: (key: string) => T): (key: string) => T {
  const children = new Map<string, T>();
  return (key) => {
    let child = children.get(key);
    if (child === undefined) {
      child = make(key);
      children.set(key, child);
    }
    return child;
  };
}

const statusText: string[] = [];
const statusLabel = (status: number): string => (statusText[status] ??= String(status));

/**
 * The gateway's own time in a request answered upstream: to the end of the response (to the first
 * token for a stream) minus the time spent in upstream attempts. Undefined when the request did
 * not go upstream, was answered by the cache, or waited on retries (backoff is policy, not overhead).
 */
export function gatewayOverheadMs(ctx: RequestContext, latencyMs: number): number | undefined {
  if (!ctx.servedBy || ctx.cache?.served || ctx.attempts.length === 0) return undefined;
  let upstreamMs = 0;
  for (const a of ctx.attempts) {
    if (a.outcome === 'ok') upstreamMs += a.durationMs;
    else if (a.outcome !== 'circuit_open') return undefined;
  }
  const endMs = ctx.result?.kind === 'stream' ? ctx.ttftMs : latencyMs;
  return endMs === undefined ? undefined : Math.max(0, endMs - upstreamMs);
}

export class RequestMetrics {
  private readonly request: (key: string) => RequestChildren;
  private readonly ttft: (key: string) => HistogramChild;
  private readonly overhead: (route: string) => HistogramChild;
  private readonly error: (key: string) => CounterChild;
  private readonly refusal: (reason: string) => CounterChild;
  private readonly cacheOutcome: (key: string) => CounterChild;
  private readonly cacheSaved: (model: string) => CounterChild;
  private readonly tenant: (label: string) => TenantChildren;
  // The label values of the request being recorded (read by the memo factories on a miss).
  private route = '';
  private model = '';
  private status = '';
  private tier = '';
  private deployment = '';
  private code = '';
  private outcome = '';

  constructor(private readonly metrics: GatewayMetrics) {
    this.request = memo(() => {
      const labels = { route: this.route, model: this.model, status: this.status, tier: this.tier, deployment: this.deployment };
      return { requests: metrics.requests.labels(labels), duration: metrics.requestDuration.labels(labels) };
    });
    this.ttft = memo(() => metrics.timeToFirstToken.labels({ route: this.route, tier: this.tier, model: this.model }));
    this.overhead = memo((route) => metrics.gatewayOverhead.labels({ route }));
    this.error = memo(() =>
      metrics.errors.labels({ route: this.route, model: this.model, code: this.code, tier: this.tier, deployment: this.deployment, status: this.status }),
    );
    this.refusal = memo((reason) => metrics.refusals.labels({ reason }));
    this.cacheOutcome = memo(() => metrics.cacheRequests.labels({ model: this.model, outcome: this.outcome }));
    this.cacheSaved = memo((model) => metrics.cacheSavedUsd.labels({ model }));
    this.tenant = memo((tenant) => ({
      tokensIn: metrics.tokens.labels({ tenant, direction: 'in' }),
      tokensOut: metrics.tokens.labels({ tenant, direction: 'out' }),
      cost: metrics.costUsd.labels({ tenant }),
    }));
  }

  observe(ctx: RequestContext, status: number, seconds: number): void {
    const m = this.metrics;
    const routing = ctx.routing;
    const served = ctx.cache?.served === true;
    const route = (this.route = ctx.route);
    const model = (this.model = ctx.model?.name ?? 'unknown');
    const st = (this.status = statusLabel(status));
    const tier = (this.tier = routing ? (routing.tiers[routing.tier]?.name ?? 'none') : 'none');
    const deployment = (this.deployment = served ? 'cache' : (ctx.servedBy?.id ?? 'none'));
    const key = `${route}\u0000${model}\u0000${st}\u0000${tier}\u0000${deployment}`;
    const children = this.request(key);
    children.requests.inc();
    children.duration.observe(seconds);

    if (ctx.ttftMs !== undefined && ctx.result?.kind === 'stream' && !served) {
      this.ttft(`${route}\u0000${tier}\u0000${model}`).observe(ctx.ttftMs / 1000);
    }
    const overheadMs = gatewayOverheadMs(ctx, seconds * 1000);
    if (overheadMs !== undefined) this.overhead(route).observe(overheadMs / 1000);

    if (ctx.streamError) m.streamErrors.inc({ model });
    if (ctx.cache) {
      const outcome = (this.outcome = ctx.cache.outcome);
      this.cacheOutcome(`${model}\u0000${outcome}`).inc();
      if (ctx.savedPico) this.cacheSaved(model).inc(ctx.savedPico / PICO);
    }
    const code = ctx.error?.code ?? ctx.streamError?.code;
    if (code) {
      this.code = code;
      this.error(`${key}\u0000${code}`).inc();
      if (REFUSAL_REASONS.has(code)) this.refusal(code).inc();
    }

    const auth = ctx.auth;
    if (auth) {
      // A served cache hit used no tokens (what it would have cost is counted as saved).
      const usage = served ? undefined : ctx.usage;
      const tokensIn = usage ? usage.prompt_tokens + (ctx.discarded?.promptTokens ?? 0) : 0;
      const tokensOut = usage ? usage.completion_tokens + (ctx.discarded?.completionTokens ?? 0) : 0;
      this.tenantUsage(auth.tenantId, tokensIn, tokensOut, ctx.costPico ?? 0);
    }
  }

  /** Counts a tenant's billed usage; ranks tenants by cost (tokens break ties between unpriced models). */
  tenantUsage(tenantId: string, tokensIn: number, tokensOut: number, costPico: number): void {
    if (!(tokensIn > 0) && !(tokensOut > 0) && !(costPico > 0)) return;
    const label = this.metrics.tenantLabels.record(tenantId, costPico + tokensIn + tokensOut);
    const children = this.tenant(label);
    if (tokensIn > 0) children.tokensIn.inc(tokensIn);
    if (tokensOut > 0) children.tokensOut.inc(tokensOut);
    if (costPico > 0) children.cost.inc(costPico / PICO);
  }
}
