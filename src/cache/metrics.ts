/**
 * The cache capability's scrape-time metrics, registered on the gateway's registry: verified
 * semantic caching per route with a bound (src/cache/verify.ts) and the judge for borderline
 * semantic candidates (src/cache/judge.ts). Both are read from the cache service's in-memory
 * stats when scraped. (Per-request cache outcomes are in src/observability/metrics.ts.)
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { RouteJudgeStats } from './judge.js';
import type { RouteVerificationStats } from './verify.js';

export class CacheMetrics {
  constructor(registry: Registry, sources: { verification: () => RouteVerificationStats[]; judge: () => RouteJudgeStats[] }) {
    const registers = [registry];
    const { verification, judge } = sources;
    new Counter({
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
    new Counter({
      name: 'tollgate_cache_semantic_candidates_total',
      help: 'Verified semantic caching: semantic candidates decided (served from the cache or verified upstream), by route with a maxErrorRate.',
      labelNames: ['route'],
      registers,
      collect() {
        this.reset();
        for (const r of verification()) this.inc({ route: r.route }, r.candidates);
      },
    });
    new Gauge({
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
    // The judge's two counters differ only in which of a route's tallies they show.
    const judgeSeries = [
      {
        name: 'tollgate_cache_judge_calls_total',
        help: 'Judge model calls for borderline semantic candidates (cache.semantic.judge), by route and verdict (yes: served from the cache; no, error, timeout: a miss).',
        tally: 'calls',
      },
      {
        name: 'tollgate_cache_judge_cached_verdicts_total',
        help: 'Borderline semantic candidates decided by a remembered judge verdict (no judge call), by route and verdict.',
        tally: 'cachedVerdicts',
      },
    ] as const;
    for (const { name, help, tally } of judgeSeries) {
      new Counter({
        name,
        help,
        labelNames: ['route', 'verdict'],
        registers,
        collect() {
          this.reset();
          for (const r of judge()) for (const [verdict, n] of Object.entries(r[tally])) this.inc({ route: r.route, verdict }, n);
        },
      });
    }
  }
}
