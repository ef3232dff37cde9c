/**
 * Prometheus metrics on a registry owned by the app (no process-wide default registry, so two
 * gateways in one process, as in tests, do not collide). Label values are bounded: `model` is a
 * configured public model name or `unknown`, never free text from a request.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { RouteVerificationStats } from '../cache/verify.js';
import type { RouteJudgeStats } from '../cache/judge.js';
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
  readonly requests: Counter<RequestLabel>;
  readonly requestDuration: Histogram<RequestLabel>;
  readonly timeToFirstToken: Histogram<'route' | 'tier' | 'model'>;
  readonly gatewayOverhead: Histogram<'route'>;
  readonly tokens: Counter<'tenant' | 'direction'>;
  readonly costUsd: Counter<'tenant'>;
  readonly refusals: Counter<'reason'>;
  /** Which tenants get a `tenant` label value of their own (bounded; see tenant-labels.ts). */
  readonly tenantLabels: TenantLabeler;
  readonly upstreamDuration: Histogram<'deployment' | 'outcome'>;
  readonly upstreamAttempts: Counter<'deployment' | 'outcome'>;
  readonly breakerState: Gauge<'deployment'>;
  readonly breakerTransitions: Counter<'deployment' | 'from' | 'to'>;
  readonly streamErrors: Counter<'model'>;
  readonly errors: Counter<'route' | 'model' | 'code' | 'tier' | 'deployment' | 'status'>;
  readonly counterStoreFailures: Counter<'operation'>;
  readonly cacheRequests: Counter<'model' | 'outcome'>;
  readonly cacheSavedUsd: Counter<'model'>;
  readonly embeddingBatchRequests: Counter;
  readonly embeddingBatchCalls: Counter;
  readonly jobsSubmitted: Counter<'priority'>;
  readonly jobsFinished: Counter<'priority' | 'status'>;
  readonly jobsStarted: Counter<'priority'>;
  readonly jobsRunning: Gauge;
  readonly jobWait: Histogram<'priority'>;
  readonly webhookDeliveries: Counter<'outcome'>;
  readonly jobsQueueDepth: Gauge<'priority'>;
  readonly jobsOldestAge: Gauge<'priority'>;
  readonly jobsQueueStatsAge: Gauge;
  /**
   * Reads the queue's depth (set by the composition root when jobs are on). Never called by a
   * scrape: a scrape shows the last value read and starts a new read in the background.
   */
  queueStats: (() => Promise<Array<{ priority: number; queued: number; oldestAgeSeconds: number }>>) | undefined;
  readonly alertEvents: Counter<'rule' | 'type'>;
  readonly alertsFiringGauge: Gauge<'rule'>;
  /** The alerts firing now (set by the composition root). */
  alertsFiring: (() => Array<{ rule: string }>) | undefined;
  /** Verified semantic caching, per route with a bound (src/cache/verify.ts): read at scrape time (in memory). */
  readonly cacheVerifications: Counter<'route' | 'outcome' | 'source'>;
  readonly cacheVerifyCandidates: Counter<'route'>;
  readonly cacheVerifyGauges: Gauge<'route' | 'figure'>;
  /** Set by the composition root (the cache service's verificationStats). */
  cacheVerification: (() => RouteVerificationStats[]) | undefined;
  /** The judge for borderline semantic candidates (src/cache/judge.ts): read at scrape time (in memory). */
  readonly cacheJudgeCalls: Counter<'route' | 'verdict'>;
  readonly cacheJudgeCachedVerdicts: Counter<'route' | 'verdict'>;
  /** Set by the composition root (the cache service's judgeStats). */
  cacheJudge: (() => RouteJudgeStats[]) | undefined;

  private readonly perRequest: RequestMetrics;
  /** Deployments whose breaker series exist (their transition counters are exported from the first sighting). */
  private readonly breakerSeen = new Set<string>();

  constructor(opts: { defaultMetrics?: boolean; /** Named tenants in tenant metrics (metrics.tenantLabels). */ tenantLabels?: number } = {}) {
    const registers = [this.registry];
    this.requests = new Counter({
      name: 'tollgate_requests_total',
      help: "Requests answered, by route, requested model (or tiered route), HTTP status, routing tier ('none' off tiered routes) and deployment that answered ('cache', or 'none').",
      labelNames: ['route', 'model', 'status', 'tier', 'deployment'],
      registers,
    });
    this.requestDuration = new Histogram({
      name: 'tollgate_request_duration_seconds',
      help: 'Time from request received to response finished, by route, model, status, tier and deployment.',
      labelNames: ['route', 'model', 'status', 'tier', 'deployment'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.timeToFirstToken = new Histogram({
      name: 'tollgate_time_to_first_token_seconds',
      help: 'Streams answered upstream: time from request received to the first chunk, by route, tier and model.',
      labelNames: ['route', 'tier', 'model'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.gatewayOverhead = new Histogram({
      name: 'tollgate_gateway_overhead_seconds',
      help: "The gateway's own time in a request answered upstream without retries: total latency (streams: time to first token) minus the upstream attempts' time.",
      labelNames: ['route'],
      buckets: OVERHEAD_BUCKETS,
      registers,
    });
    this.tokens = new Counter({
      name: 'tollgate_tokens_total',
      help: "Tokens billed (sent upstream: direction in; generated: out), by tenant: the top spenders by id, the rest as '__other__'.",
      labelNames: ['tenant', 'direction'],
      registers,
    });
    this.costUsd = new Counter({
      name: 'tollgate_cost_usd_total',
      help: "Cost billed in USD, by tenant: the top spenders by id, the rest as '__other__'.",
      labelNames: ['tenant'],
      registers,
    });
    this.refusals = new Counter({
      name: 'tollgate_refusals_total',
      help: 'Requests the gateway refused by policy, by reason: rate_limit_exceeded, budget_exceeded, budget_unavailable, access_disabled, model_disabled, model_not_allowed, abuse_throttled.',
      labelNames: ['reason'],
      registers,
    });
    this.tenantLabels = new TenantLabeler({ topN: opts.tenantLabels ?? 20 });
    this.upstreamDuration = new Histogram({
      name: 'tollgate_upstream_duration_seconds',
      help: 'Upstream attempt latency (to the full answer, or to the first chunk of a stream), by deployment and outcome.',
      labelNames: ['deployment', 'outcome'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.upstreamAttempts = new Counter({
      name: 'tollgate_upstream_attempts_total',
      help: 'Upstream attempts by deployment and outcome (ok, http_5xx, http_429, timeout, connection, circuit_open, ...).',
      labelNames: ['deployment', 'outcome'],
      registers,
    });
    this.breakerState = new Gauge({
      name: 'tollgate_circuit_breaker_state',
      help: 'Circuit breaker state per deployment: 0 closed, 1 half-open, 2 open.',
      labelNames: ['deployment'],
      registers,
    });
    this.breakerTransitions = new Counter({
      name: 'tollgate_circuit_breaker_transitions_total',
      help: 'Circuit breaker state changes per deployment, by from and to state (a half-open that lasts under a millisecond still counts).',
      labelNames: ['deployment', 'from', 'to'],
      registers,
    });
    this.streamErrors = new Counter({
      name: 'tollgate_stream_errors_total',
      help: 'Streams that failed after the first byte reached the client (ended with an SSE error event).',
      labelNames: ['model'],
      registers,
    });
    this.errors = new Counter({
      name: 'tollgate_errors_total',
      help: 'Requests that ended in an error, by route, model, error code (see src/errors.ts), tier, deployment and status.',
      labelNames: ['route', 'model', 'code', 'tier', 'deployment', 'status'],
      registers,
    });
    this.counterStoreFailures = new Counter({
      name: 'tollgate_counter_store_failures_total',
      help: 'Operations the shared counter store (Redis) failed: rate limits then run on local buckets, budgets refuse.',
      labelNames: ['operation'],
      registers,
    });
    this.cacheRequests = new Counter({
      name: 'tollgate_cache_requests_total',
      help: 'Chat requests by what the cache did: hit (exact), semantic, stale, coalesced (shared an in-flight call), miss, bypass (not cacheable).',
      labelNames: ['model', 'outcome'],
      registers,
    });
    this.embeddingBatchRequests = new Counter({
      name: 'tollgate_embedding_batched_requests_total',
      help: 'Single-input embedding requests sent upstream in micro-batches (divide by tollgate_embedding_batch_calls_total for the reduction).',
      registers,
    });
    this.embeddingBatchCalls = new Counter({
      name: 'tollgate_embedding_batch_calls_total',
      help: 'Upstream calls made by embedding micro-batches.',
      registers,
    });
    this.cacheSavedUsd = new Counter({
      name: 'tollgate_cache_saved_usd_total',
      help: 'What answers served by the cache would have cost, in USD.',
      labelNames: ['model'],
      registers,
    });
    this.jobsSubmitted = new Counter({
      name: 'tollgate_jobs_submitted_total',
      help: 'Jobs accepted (POST /v1/jobs, Prefer: respond-async, batch lines), by queue priority (lower runs first).',
      labelNames: ['priority'],
      registers,
    });
    this.jobsStarted = new Counter({
      name: 'tollgate_jobs_started_total',
      help: 'Job runs started by this process (retries and take-overs included), by queue priority.',
      labelNames: ['priority'],
      registers,
    });
    this.jobsFinished = new Counter({
      name: 'tollgate_jobs_finished_total',
      help: 'Jobs ended by this process, by queue priority and status (succeeded, failed, cancelled, expired): the throughput.',
      labelNames: ['priority', 'status'],
      registers,
    });
    this.jobsRunning = new Gauge({ name: 'tollgate_jobs_running', help: 'Jobs running in this process now.', registers });
    this.jobWait = new Histogram({
      name: 'tollgate_job_queue_wait_seconds',
      help: 'Time from submit to a job run starting, by queue priority.',
      labelNames: ['priority'],
      buckets: [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600],
      registers,
    });
    this.webhookDeliveries = new Counter({
      name: 'tollgate_job_webhook_deliveries_total',
      help: 'Job webhook delivery attempts by outcome (delivered, retry, failed).',
      labelNames: ['outcome'],
      registers,
    });
    this.queueStats = undefined;
    // The whole queue's state (shared by every process in distributed mode) comes from the
    // database, which a scrape must never wait for (a slow or stalled PostgreSQL would take the
    // metrics down with it): a scrape shows the last value read and, when it is older than
    // QUEUE_REFRESH_MS, starts one read in the background (abandoned after QUEUE_READ_TIMEOUT_MS).
    const queue = new BackgroundValue(() => (this.queueStats ? this.queueStats() : Promise.resolve([])));
    this.jobsQueueDepth = new Gauge({
      name: 'tollgate_jobs_queue_depth',
      help: 'Jobs waiting in the queue (all processes), by queue priority: scale workers on it. As read after an earlier scrape, see tollgate_jobs_queue_stats_age_seconds.',
      labelNames: ['priority'],
      registers,
      collect() {
        this.reset();
        for (const p of queue.get() ?? []) this.set({ priority: String(p.priority) }, p.queued);
      },
    });
    this.jobsQueueStatsAge = new Gauge({
      name: 'tollgate_jobs_queue_stats_age_seconds',
      help: 'Age of the values of tollgate_jobs_queue_depth and tollgate_jobs_oldest_age_seconds (read in the background, never at scrape time); absent before the first read.',
      registers,
      collect() {
        this.reset();
        const age = queue.ageMs();
        if (age !== undefined) this.set(age / 1000);
      },
    });
    this.alertEvents = new Counter({
      name: 'tollgate_alert_events_total',
      help: 'Alert rule events (alert.firing, alert.resolved), by rule.',
      labelNames: ['rule', 'type'],
      registers,
    });
    const firing = () => this.alertsFiring?.() ?? [];
    this.alertsFiringGauge = new Gauge({
      name: 'tollgate_alerts_firing',
      help: 'Alerts firing now, by rule (in the process that evaluates the rules).',
      labelNames: ['rule'],
      registers,
      collect() {
        this.reset();
        const byRule = new Map<string, number>();
        for (const a of firing()) byRule.set(a.rule, (byRule.get(a.rule) ?? 0) + 1);
        for (const [rule, n] of byRule) this.set({ rule }, n);
      },
    });
    this.jobsOldestAge = new Gauge({
      name: 'tollgate_jobs_oldest_age_seconds',
      help: 'Age of the oldest waiting job, by queue priority (0 when none waits).',
      labelNames: ['priority'],
      registers,
      collect() {
        this.reset();
        for (const p of queue.get() ?? []) this.set({ priority: String(p.priority) }, p.oldestAgeSeconds);
      },
    });
    const verification = () => this.cacheVerification?.() ?? [];
    this.cacheVerification = undefined;
    this.cacheVerifications = new Counter({
      name: 'tollgate_cache_verifications_total',
      help: "Verified semantic caching: semantic candidates whose cached answer was checked, by route, outcome (agree, disagree) and source (verify: an upstream call compared with the cached answer; feedback: POST /v1/feedback on a served candidate).",
      labelNames: ['route', 'outcome', 'source'],
      registers,
      collect() {
        this.reset();
        for (const r of verification()) {
          this.inc({ route: r.route, outcome: 'agree', source: 'verify' }, r.verified - r.disagreements);
          this.inc({ route: r.route, outcome: 'disagree', source: 'verify' }, r.disagreements);
          this.inc({ route: r.route, outcome: 'agree', source: 'feedback' }, r.feedbackGood);
          this.inc({ route: r.route, outcome: 'disagree', source: 'feedback' }, r.feedbackBad);
        }
      },
    });
    this.cacheVerifyCandidates = new Counter({
      name: 'tollgate_cache_semantic_candidates_total',
      help: 'Verified semantic caching: semantic candidates decided (served from the cache or verified upstream), by route with a maxErrorRate.',
      labelNames: ['route'],
      registers,
      collect() {
        this.reset();
        for (const r of verification()) this.inc({ route: r.route }, r.candidates);
      },
    });
    this.cacheVerifyGauges = new Gauge({
      name: 'tollgate_cache_verification',
      help: 'Verified semantic caching, by route and figure: max_error_rate (the configured bound), verification_rate (verified / candidates), observed_disagreement (disagreements / verified), estimated_error (expected share of candidates answered wrongly from the cache) and error_bound (its 95% upper bound, kept at or below max_error_rate).',
      labelNames: ['route', 'figure'],
      registers,
      collect() {
        this.reset();
        for (const r of verification()) {
          this.set({ route: r.route, figure: 'max_error_rate' }, r.maxErrorRate);
          this.set({ route: r.route, figure: 'verification_rate' }, r.verificationRate);
          this.set({ route: r.route, figure: 'observed_disagreement' }, r.observedDisagreement);
          this.set({ route: r.route, figure: 'estimated_error' }, r.estimatedError);
          this.set({ route: r.route, figure: 'error_bound' }, r.errorBound);
        }
      },
    });
    const judge = () => this.cacheJudge?.() ?? [];
    this.cacheJudge = undefined;
    this.cacheJudgeCalls = new Counter({
      name: 'tollgate_cache_judge_calls_total',
      help: 'Judge model calls for borderline semantic candidates (cache.semantic.judge), by route and verdict (yes: served from the cache; no, error, timeout: a miss).',
      labelNames: ['route', 'verdict'],
      registers,
      collect() {
        this.reset();
        for (const r of judge()) for (const [verdict, n] of Object.entries(r.calls)) this.inc({ route: r.route, verdict }, n);
      },
    });
    this.cacheJudgeCachedVerdicts = new Counter({
      name: 'tollgate_cache_judge_cached_verdicts_total',
      help: 'Borderline semantic candidates decided by a remembered judge verdict (no judge call), by route and verdict.',
      labelNames: ['route', 'verdict'],
      registers,
      collect() {
        this.reset();
        for (const r of judge()) for (const [verdict, n] of Object.entries(r.cachedVerdicts)) this.inc({ route: r.route, verdict }, n);
      },
    });
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
}

/** How often a scrape may start a new read of the queue's state, and how long one may take. */
const QUEUE_REFRESH_MS = 1_000;
const QUEUE_READ_TIMEOUT_MS = 5_000;

/**
 * A value read in the background: {@link get} returns the last one read at once and starts a new
 * read when it is older than QUEUE_REFRESH_MS and none is in flight (a read that has not ended
 * within QUEUE_READ_TIMEOUT_MS is given up, so a hung one never blocks the next). A failed read
 * keeps the last value (its age shows it).
 */
class BackgroundValue<T> {
  private value: T | undefined;
  private readAt: number | undefined;
  private inFlight: { startedAt: number } | undefined;

  constructor(private readonly read: () => Promise<T>) {}

  get(): T | undefined {
    this.refresh();
    return this.value;
  }

  /** How old the value is (ms); undefined before the first read. */
  ageMs(): number | undefined {
    return this.readAt === undefined ? undefined : Math.max(0, Date.now() - this.readAt);
  }

  private refresh(): void {
    const now = Date.now();
    if (this.inFlight && now - this.inFlight.startedAt < QUEUE_READ_TIMEOUT_MS) return;
    if (this.readAt !== undefined && now - this.readAt < QUEUE_REFRESH_MS) return;
    const token = { startedAt: now };
    this.inFlight = token;
    let p: Promise<T>;
    try {
      p = this.read();
    } catch (err) {
      p = Promise.reject(err);
    }
    p.then(
      (value) => {
        if (this.readAt === undefined || token.startedAt >= this.readAt) {
          this.value = value;
          this.readAt = token.startedAt;
        }
      },
      () => undefined,
    ).finally(() => {
      if (this.inFlight === token) this.inFlight = undefined;
    });
  }
}
