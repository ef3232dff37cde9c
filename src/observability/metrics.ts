/**
 * The per-request Prometheus metrics (requests, latency, errors, refusals, tenant usage, upstream
 * attempts, circuit breakers, cache outcomes, counter store failures) on a registry owned by the
 * app (no process-wide default registry, so two gateways in one process, as in tests, do not
 * collide). Capabilities register their own metrics on the same `registry` (src/jobs/metrics.ts,
 * src/cache/metrics.ts, alert-metrics.ts, drift, abuse...). Label values are bounded: `model` is a
 * configured public model name or `unknown`, never free text from a request.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { BreakerState } from '../resilience/circuit-breaker.js';
import type { RequestContext } from '../pipeline/context.js';
import { RequestMetrics } from './request-metrics.js';
import { TenantLabeler } from './tenant-labels.js';

/**
 * Latency buckets (seconds), 0.5 ms to 120 s: at most 2.5x apart below 50 ms (cache hits) and at
 * most 1.5x apart above, so histogram_quantile resolves p50/p95/p99 of a cache hit, a chat
 * answer and a long generation alike.
 */
export const LATENCY_BUCKETS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.35, 0.5, 0.75, 1, 1.5, 2, 3, 4, 5, 7.5, 10, 15,
  20, 30, 45, 60, 90, 120,
];

/** Gateway overhead buckets (seconds): fine from 0.05 ms, where its p50 target (0.2 ms) lies, up to 1 s. */
export const OVERHEAD_BUCKETS = [
  0.00005, 0.0001, 0.00015, 0.0002, 0.0003, 0.0005, 0.00075, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1,
];

/** The five labels of a request's outcome (tier and deployment are 'none' when not applicable). */
export type RequestLabel = 'route' | 'model' | 'status' | 'tier' | 'deployment';
const REQUEST_LABELS: readonly RequestLabel[] = ['route', 'model', 'status', 'tier', 'deployment'];

const BREAKER_VALUE: Record<BreakerState, number> = { closed: 0, 'half-open': 1, open: 2 };
/** Every transition a breaker can make (src/resilience/circuit-breaker.ts). */
const BREAKER_TRANSITIONS: ReadonlyArray<readonly [BreakerState, BreakerState]> = [
  ['closed', 'open'],
  ['open', 'half-open'],
  ['half-open', 'closed'],
  ['half-open', 'open'],
];

export class GatewayMetrics {
  readonly registry = new Registry();
  // Registered in this order (the order of /metrics): name, label names (and buckets), then help.
  readonly requests = this.counter('tollgate_requests_total', REQUEST_LABELS,
    "Requests answered, by route, requested model (or tiered route), HTTP status, routing tier ('none' off tiered routes) and deployment that answered ('cache', or 'none').");
  readonly requestDuration = this.histogram('tollgate_request_duration_seconds', REQUEST_LABELS, LATENCY_BUCKETS,
    'Time from request received to response finished, by route, model, status, tier and deployment.');
  readonly timeToFirstToken = this.histogram('tollgate_time_to_first_token_seconds', ['route', 'tier', 'model'], LATENCY_BUCKETS,
    'Streams answered upstream: time from request received to the first chunk, by route, tier and model.');
  readonly gatewayOverhead = this.histogram('tollgate_gateway_overhead_seconds', ['route'], OVERHEAD_BUCKETS,
    "The gateway's own time in a request answered upstream without retries: total latency (streams: time to first token) minus the upstream attempts' time.");
  readonly tokens = this.counter('tollgate_tokens_total', ['tenant', 'direction'],
    "Tokens billed (sent upstream: direction in; generated: out), by tenant: the top spenders by id, the rest as '__other__'.");
  readonly costUsd = this.counter('tollgate_cost_usd_total', ['tenant'], "Cost billed in USD, by tenant: the top spenders by id, the rest as '__other__'.");
  readonly refusals = this.counter('tollgate_refusals_total', ['reason'],
    'Requests the gateway refused by policy, by reason: rate_limit_exceeded, budget_exceeded, budget_unavailable, access_disabled, model_disabled, model_not_allowed, abuse_throttled.');
  readonly upstreamDuration = this.histogram('tollgate_upstream_duration_seconds', ['deployment', 'outcome'], LATENCY_BUCKETS,
    'Upstream attempt latency (to the full answer, or to the first chunk of a stream), by deployment and outcome.');
  readonly upstreamAttempts = this.counter('tollgate_upstream_attempts_total', ['deployment', 'outcome'],
    'Upstream attempts by deployment and outcome (ok, http_5xx, http_429, timeout, connection, circuit_open, ...).');
  readonly breakerState: Gauge<'deployment'> = new Gauge({
    name: 'tollgate_circuit_breaker_state',
    help: 'Circuit breaker state per deployment: 0 closed, 1 half-open, 2 open.',
    labelNames: ['deployment'],
    registers: [this.registry],
  });
  readonly breakerTransitions = this.counter('tollgate_circuit_breaker_transitions_total', ['deployment', 'from', 'to'],
    'Circuit breaker state changes per deployment, by from and to state (a half-open that lasts under a millisecond still counts).');
  readonly streamErrors = this.counter('tollgate_stream_errors_total', ['model'],
    'Streams that failed after the first byte reached the client (ended with an SSE error event).');
  readonly errors = this.counter('tollgate_errors_total', ['route', 'model', 'code', 'tier', 'deployment', 'status'],
    'Requests that ended in an error, by route, model, error code (see src/errors.ts), tier, deployment and status.');
  readonly counterStoreFailures = this.counter('tollgate_counter_store_failures_total', ['operation'],
    'Operations the shared counter store (Redis) failed: rate limits then run on local buckets, budgets refuse.');
  readonly cacheRequests = this.counter('tollgate_cache_requests_total', ['model', 'outcome'],
    'Chat requests by what the cache did: hit (exact), semantic, stale, coalesced (shared an in-flight call), miss, bypass (not cacheable).');
  readonly cacheSavedUsd = this.counter('tollgate_cache_saved_usd_total', ['model'], 'What answers served by the cache would have cost, in USD.');
  /** Which tenants get a `tenant` label value of their own (bounded; see tenant-labels.ts). */
  readonly tenantLabels: TenantLabeler;

  private readonly perRequest: RequestMetrics;
  /** Deployments whose breaker series exist (their transition counters are exported from the first sighting). */
  private readonly breakerSeen = new Set<string>();

  constructor(opts: { defaultMetrics?: boolean; /** Named tenants in tenant metrics (metrics.tenantLabels). */ tenantLabels?: number } = {}) {
    this.tenantLabels = new TenantLabeler({ topN: opts.tenantLabels ?? 20 });
    if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: 'tollgate_process_' });
    this.perRequest = new RequestMetrics(this);
  }

  /** Records an ended request (settle): requests, latency, errors, TTFT, overhead, cache, refusals, tenant usage. */
  observeRequest(ctx: RequestContext, status: number, seconds: number): void {
    this.perRequest.observe(ctx, status, seconds);
  }

  /** Adds a tenant's billed usage to the tenant metrics (the label is bounded by `tenantLabels`). */
  recordTenantUsage(tenantId: string, tokensIn: number, tokensOut: number, costPico: number): void {
    this.perRequest.tenantUsage(tenantId, tokensIn, tokensOut, costPico);
  }

  /** Sets a deployment's breaker state gauge; the first time, also exports its transition counters at 0 (so rate() sees the first one). */
  setBreakerState(deployment: string, state: BreakerState): void {
    this.breakerState.set({ deployment }, BREAKER_VALUE[state]);
    if (this.breakerSeen.has(deployment)) return;
    this.breakerSeen.add(deployment);
    for (const [from, to] of BREAKER_TRANSITIONS) this.breakerTransitions.inc({ deployment, from, to }, 0);
  }

  /** A breaker changed state (BreakerRegistry.onStateChange): the state gauge and the transitions counter. */
  breakerTransition(deployment: string, from: BreakerState, to: BreakerState): void {
    this.setBreakerState(deployment, to);
    this.breakerTransitions.inc({ deployment, from, to });
  }

  private counter<const L extends string>(name: string, labelNames: readonly L[], help: string): Counter<L> {
    return new Counter({ name, help, labelNames, registers: [this.registry] });
  }

  private histogram<const L extends string>(name: string, labelNames: readonly L[], buckets: number[], help: string): Histogram<L> {
    return new Histogram({ name, help, labelNames, buckets, registers: [this.registry] });
  }
}
