/** The wire shapes of /admin/v1/dashboard/* and /admin/v1/requests (see docs/API.md). */

export type Num = number | null;

export interface LiveSeries {
  stepSec: number;
  t: number[];
  requestsPerSec: number[];
  errorsPerSec: number[];
  failuresPerSec: number[];
  refusalsPerSec: number[];
  fallbacksPerSec: number[];
  costPerHourUsd: number[];
  costPerRequestUsd: Num[];
  cacheHitRate: Num[];
  savedUsdPerHour: number[];
  ttftP50Ms: Num[];
  ttftP95Ms: Num[];
  latency: Record<string, { p50: Num[]; p95: Num[]; p99: Num[] }>;
  tierMix: Record<string, number[]>;
  modelMix: Record<string, number[]>;
}

export interface LiveSnapshot {
  windowSec: number;
  requests: number;
  requestsPerSec: number;
  errors: number;
  failures: number;
  refusals: number;
  fallbacks: number;
  errorRate: number;
  promptTokens: number;
  completionTokens: number;
  costUsd: number;
  costPerHourUsd: number;
  costPerRequestUsd: number;
  savedUsd: number;
  cache: Record<string, number>;
  cacheHitRate: Num;
  p50Ms: Num;
  p95Ms: Num;
  p99Ms: Num;
  ttftP50Ms: Num;
  ttftP95Ms: Num;
  nodes: number;
}

export interface Signal {
  name: string;
  value: string | number | null;
  state?: string;
}

export interface Signals {
  drift?: Signal[];
  alerts?: Signal[];
  abuse?: Signal[];
}

export interface QueueDepth {
  priority: number;
  queued: number;
  oldestAgeSeconds: number;
}

export interface DashboardSnapshot {
  at: number;
  window_minutes: number;
  series: LiveSeries;
  current: LiveSnapshot;
  hour: LiveSnapshot;
  queue: QueueDepth[] | null;
  signals: Signals | null;
}

export interface UsageRow {
  [dimension: string]: string | number;
  requests: number;
  errors: number;
  prompt_tokens: number;
  completion_tokens: number;
  cost_usd: string;
  saved_usd: string;
}

export interface BudgetUse {
  tenant_id: string;
  tenant_name: string;
  period: string;
  limit_usd: string;
  used_usd: string;
  used_fraction: number;
  resets_at: string | null;
}

export interface DashboardSummary {
  from: string;
  to: string;
  top_tenants: UsageRow[];
  top_users: UsageRow[];
  top_models: UsageRow[];
  budgets: BudgetUse[];
}

export interface RequestRow {
  id: string;
  created_at: string | number;
  tenant_id: string | null;
  key_id: string | null;
  user: string | null;
  route: string;
  model: string;
  served_model: string | null;
  deployment: string | null;
  tier: string | null;
  status: number;
  error_code: string | null;
  cache: string;
  latency_ms: number;
  ttft_ms: number | null;
  upstream_ms: number | null;
  attempts: number;
  prompt_tokens: number;
  completion_tokens: number;
  cost_usd: string | number;
  stream: boolean;
  trace_id: string | null;
  job_id: string | null;
}

export interface RequestPage {
  object: 'list';
  data: RequestRow[];
  has_more: boolean;
  next_cursor: string | null;
}

/** GET /admin/v1/cache: verified semantic caching, per route with `semantic.maxErrorRate` (this process). */
export interface CacheVerificationRow {
  route: string;
  max_error_rate: number;
  candidates: number;
  served: number;
  verified: number;
  disagreements: number;
  feedback_good: number;
  feedback_bad: number;
  verification_rate: number;
  observed_disagreement: number;
  estimated_error: number;
  error_bound: number;
}

export interface CacheStats {
  verification?: CacheVerificationRow[];
}
