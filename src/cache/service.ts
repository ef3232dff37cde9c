/**
 * The cache service: per-route policy, exact answers, the semantic cache, single flight, feedback
 * and invalidation. The pipeline stage (src/pipeline/stages/cache.ts) and the HTTP routes
 * (/v1/feedback, /admin/v1/cache) use it; src/capabilities/cache.ts builds it.
 */
import { randomUUID } from 'node:crypto';
import type { CacheConfig, CacheMode, RouteCacheConfig } from '../config/cache-schema.js';
import { estimateUsage } from '../metering/tokenizer.js';
import type { Logger } from '../observability/logger.js';
import type { ChatCompletion, ChatCompletionRequest } from '../providers/types.js';
import type { CacheOutcome } from '../storage/types.js';
import { type CachedAnswer, isCacheable, parseAnswer, serializeAnswer } from './answer.js';
import { type CacheIdentity, encodeRoute, keyPrefix } from './key.js';
import type { SemanticCache } from './semantic.js';
import { SingleFlight } from './singleflight.js';
import { DEFAULT_DECISION_THRESHOLD, DEFAULT_SEMANTIC_THRESHOLD, STALE_DECISION_THRESHOLD, STALE_SEMANTIC_THRESHOLD } from './tuning.js';
import type { CacheFilter, ExactStore, SemanticEntry } from './types.js';
import { type CacheJudge, DEFAULT_JUDGE_BAND, DEFAULT_JUDGE_TIMEOUT_MS, DEFAULT_MAX_CACHED_VERDICTS, type JudgePolicy, type RouteJudgeStats } from './judge.js';
import { DEFAULT_ANSWER_SIMILARITY, DEFAULT_MIN_VERIFY_RATE, type RouteVerificationStats, VerificationTracker, type VerifyDecision, type VerifyPolicy, compareAnswers } from './verify.js';

/** A route's effective cache policy. */
export interface RoutePolicy {
  mode: CacheMode;
  ttlMs: number;
  semantic: boolean;
  threshold: number;
  staleFallback: boolean;
  staleThreshold: number;
  /** Verified semantic caching (`semantic.maxErrorRate`); undefined: candidates are served unverified. */
  verify?: VerifyPolicy;
  /** The judge for borderline candidates (`semantic.judge`, src/cache/judge.ts); undefined: none. */
  judge?: JudgePolicy;
}

/** What the cache did for a request, remembered for POST /v1/feedback. */
export interface ServedRecord {
  outcome: CacheOutcome;
  route: string;
  exactKey?: string;
  semanticId?: string;
  /** Of a semantic (or stale) hit; 1 for the request whose answer was stored. */
  similarity?: number;
  /** A verdict on this semantic hit already counted in its entry's error estimate (once per request). */
  counted?: boolean;
}

export type FeedbackAction = 'removed' | 'demoted' | 'promoted' | 'none';

export interface CacheServiceOptions {
  config: CacheConfig;
  /** Per-route overrides (`models.<name>.cache`). */
  routes: Record<string, RouteCacheConfig | undefined>;
  exact: ExactStore;
  semantic: SemanticCache | undefined;
  log: Logger;
  /** The judge for borderline semantic candidates (cache.semantic.judge): see attachJudge. */
  judge?: CacheJudge | undefined;
  /** Verified semantic caching's serve-or-verify draw (tests: a deterministic one). */
  random?: (() => number) | undefined;
}

/** Route segment of feedback records in the exact store: no URI-encoded model name can be this. */
const FEEDBACK_SEGMENT = '%00feedback';

export class CacheService {
  readonly flights = new SingleFlight();
  readonly config: CacheConfig;
  readonly exact: ExactStore;
  readonly semantic: SemanticCache | undefined;
  private readonly routes: Record<string, RouteCacheConfig | undefined>;
  private readonly policies = new Map<string, RoutePolicy>();
  private readonly log: Logger;
  /** Writes in progress: answers being stored, hits promoted, served answers remembered. */
  private readonly writes = new Set<Promise<unknown>>();
  /** Verified semantic caching: per-entry error estimates and per-route figures (src/cache/verify.ts). */
  readonly verifier: VerificationTracker;
  /** The judge for borderline candidates (CacheServiceOptions.judge). */
  private judgeRef: CacheJudge | undefined;

  constructor(opts: CacheServiceOptions) {
    this.config = opts.config;
    this.routes = opts.routes;
    this.exact = opts.exact;
    this.semantic = opts.semantic;
    this.log = opts.log;
    this.verifier = new VerificationTracker({ maxEntries: opts.config.semantic.maxEntries });
    if (this.semantic) this.semantic.onForget = (id) => this.verifier.forget(id);
    // Routes with a bound are listed (admin API, /metrics) from the start.
    for (const route of Object.keys(opts.routes)) {
      const v = this.policy(route).verify;
      if (v) this.verifier.declare(route, v.maxErrorRate);
    }
    if (opts.random) this.verifier.random = opts.random;
    if (opts.judge) this.attachJudge(opts.judge);
  }

  get enabled(): boolean {
    return this.config.enabled;
  }

  policy(route: string): RoutePolicy {
    let p = this.policies.get(route);
    if (!p) {
      const r = this.routes[route];
      const s = this.config.semantic;
      p = {
        mode: r?.mode ?? this.config.mode,
        ttlMs: r?.ttlMs ?? this.config.ttlMs,
        semantic: this.semantic !== undefined && (r?.semantic?.enabled ?? s.enabled),
        // `model` mode: a score threshold; `similarity` mode: a cosine (tuning.ts).
        threshold: r?.semantic?.threshold ?? s.threshold ?? (this.semantic?.decision ? DEFAULT_DECISION_THRESHOLD : DEFAULT_SEMANTIC_THRESHOLD),
        staleFallback: r?.staleFallback ?? this.config.staleFallback,
        staleThreshold: s.staleThreshold ?? (this.semantic?.decision ? STALE_DECISION_THRESHOLD : STALE_SEMANTIC_THRESHOLD),
      };
      const maxErrorRate = r?.semantic?.maxErrorRate ?? s.maxErrorRate;
      if (p.semantic && maxErrorRate !== undefined) {
        p.verify = {
          maxErrorRate,
          answerSimilarity: r?.semantic?.verify?.answerSimilarity ?? s.verify.answerSimilarity ?? DEFAULT_ANSWER_SIMILARITY,
          minRate: r?.semantic?.verify?.minRate ?? s.verify.minRate ?? DEFAULT_MIN_VERIFY_RATE,
        };
      }
      const judge = r?.semantic?.judge ?? s.judge;
      if (p.semantic && judge) {
        p.judge = {
          model: judge.model,
          band: judge.band ?? DEFAULT_JUDGE_BAND,
          timeoutMs: judge.timeoutMs ?? DEFAULT_JUDGE_TIMEOUT_MS,
          maxCachedVerdicts: judge.maxCachedVerdicts ?? DEFAULT_MAX_CACHED_VERDICTS,
        };
      }
      this.policies.set(route, p);
    }
    return p;
  }

  /**
   * Attaches the judge for borderline candidates: checks that every configured judge model is a
   * chat model of the catalog (throws naming the config field otherwise) and declares the routes
   * that use it (listed from the start in the admin API and /metrics).
   */
  attachJudge(judge: CacheJudge): void {
    const s = this.config.semantic;
    if (s.judge) judge.check(s.judge.model, 'cache.semantic.judge.model');
    for (const [route, r] of Object.entries(this.routes)) {
      const own = r?.semantic?.judge;
      if (own) judge.check(own.model, `cache.semantic.judge.model of route '${route}'`);
      const p = this.policy(route).judge;
      if (p) judge.declare(route, p.model);
    }
    this.judgeRef = judge;
  }

  /** The judge, when one is attached. */
  get judge(): CacheJudge | undefined {
    return this.judgeRef;
  }

  /** Per-route figures of the judge. */
  judgeStats(): RouteJudgeStats[] {
    return this.judgeRef?.stats() ?? [];
  }

  /** The exact answer for `key`; a store failure is a miss (logged), never an error. */
  async getExact(key: string): Promise<CachedAnswer | undefined> {
    try {
      const text = await this.exact.get(key);
      return text === undefined ? undefined : parseAnswer(text);
    } catch (err) {
      this.log.warn({ err }, 'cache: exact lookup failed (served as a miss)');
      return undefined;
    }
  }

  /**
   * Stores a fresh answer under its exact key and, when it has a semantic scope, by meaning.
   * Returns the semantic entry's id. Failures are logged: the cache is an optimisation.
   */
  store(
    ident: CacheIdentity,
    args: { tenantId: string; route: string; deployment: string; request: ChatCompletionRequest; body: ChatCompletion; vector?: Float32Array },
  ): Promise<string | undefined> {
    return this.track(this.storeNow(ident, args));
  }

  /**
   * Resolves once every write started so far has finished, those they start included (an answer
   * stored, then remembered for feedback): tests wait on it instead of sleeping.
   */
  async idle(): Promise<void> {
    while (this.writes.size > 0) await Promise.allSettled([...this.writes]);
  }

  private track<T>(write: Promise<T>): Promise<T> {
    this.writes.add(write);
    const done = () => void this.writes.delete(write);
    write.then(done, done);
    return write;
  }

  private async storeNow(
    ident: CacheIdentity,
    args: { tenantId: string; route: string; deployment: string; request: ChatCompletionRequest; body: ChatCompletion; vector?: Float32Array },
  ): Promise<string | undefined> {
    const { body } = args;
    if (!isCacheable(body)) return undefined;
    try {
      const usage = body.usage ?? (await estimateUsage(args.request, body.choices.map((c) => c.message.content ?? '').join('')));
      const now = Date.now();
      const ttlMs = this.policy(args.route).ttlMs;
      const semantic = this.semantic && ident.scope && ident.question !== undefined && args.vector && ident.question.length <= this.config.semantic.maxQuestionChars;
      const id = semantic ? `${keyPrefix(args.tenantId, args.route)}${randomUUID()}` : undefined;
      const answer: CachedAnswer = { v: 1, body: { ...body, usage }, model: args.route, deployment: args.deployment, usage, createdAt: now, ...(id ? { semanticId: id } : {}) };
      const text = serializeAnswer(answer);
      const writes: Array<Promise<unknown>> = [this.exact.set(ident.exactKey, text, ttlMs)];
      if (this.semantic && id && ident.scope && ident.question !== undefined && args.vector) {
        writes.push(
          this.semantic.put({
            id,
            scope: ident.scope,
            tenantId: args.tenantId,
            route: encodeRoute(args.route),
            embedder: this.semantic.embedderId,
            question: ident.question,
            vector: args.vector,
            answer: text,
            createdAt: now,
            expiresAt: now + ttlMs,
            threshold: null,
          }),
        );
      }
      await Promise.all(writes);
      return id;
    } catch (err) {
      this.log.warn({ err }, 'cache: could not store an answer');
      return undefined;
    }
  }

  /**
   * Stores a semantic entry's answer under a paraphrase's exact key too, for what is left of the
   * entry's life (fire and forget). A bad verdict on the entry later leaves this copy to its TTL.
   */
  promote(exactKey: string, entry: SemanticEntry): void {
    const ttlMs = entry.expiresAt - Date.now();
    if (ttlMs <= 0) return;
    this.track(this.exact.set(exactKey, entry.answer, ttlMs).catch((err: unknown) => this.log.warn({ err }, 'cache: could not promote a semantic hit')));
  }

  /** A semantic candidate of a route with a bound: serve it, or verify it (src/cache/verify.ts)? */
  verifyDecision(route: string, entryId: string): VerifyDecision | undefined {
    const policy = this.policy(route).verify;
    return policy ? this.verifier.decide(route, entryId, policy) : undefined;
  }

  /**
   * A verification's fresh answer is complete: compares it with the cached entry's, off the
   * response path (the client already has it), and updates the entry's estimate. Then stores the
   * fresh answer: under its exact key only when the two agree (the entry stays the one answer of
   * that meaning), as a new semantic entry of its own when they differ. Returns the new entry's
   * id, if any, and the verdict.
   */
  completeVerification(
    ident: CacheIdentity,
    args: { tenantId: string; route: string; deployment: string; request: ChatCompletionRequest; body: ChatCompletion; vector?: Float32Array; cached: SemanticEntry },
  ): Promise<{ id: string | undefined; agree: boolean | undefined }> {
    return this.track(this.verifyNow(ident, args));
  }

  private async verifyNow(
    ident: CacheIdentity,
    args: { tenantId: string; route: string; deployment: string; request: ChatCompletionRequest; body: ChatCompletion; vector?: Float32Array; cached: SemanticEntry },
  ): Promise<{ id: string | undefined; agree: boolean | undefined }> {
    await new Promise((resolve) => setImmediate(resolve)); // never on the response's path
    const policy = this.policy(args.route).verify;
    const cached = parseAnswer(args.cached.answer);
    if (!policy || !cached || !isCacheable(args.body)) {
      this.verifier.abandon(args.route);
      return { id: await this.storeNow(ident, args), agree: undefined };
    }
    const { agree, similarity } = compareAnswers(cached.body, args.body, policy.answerSimilarity);
    this.verifier.record(args.route, args.cached.id, agree, 'verify', policy.maxErrorRate);
    this.log.debug({ entry: args.cached.id, agree, similarity }, 'cache: verified a semantic candidate');
    const { vector, cached: _cached, ...rest } = args;
    const id = await this.storeNow(ident, agree || !vector ? rest : { ...rest, vector });
    return { id, agree };
  }

  /** Per-route figures of verified semantic caching. */
  verificationStats(): RouteVerificationStats[] {
    return this.verifier.stats();
  }

  /** Remembers what the cache did for a request, for feedback (fire and forget). */
  remember(tenantId: string, requestId: string, record: ServedRecord): void {
    this.track(
      this.exact
        .set(this.feedbackKey(tenantId, requestId), JSON.stringify(record), this.config.feedbackWindowMs)
        .catch((err: unknown) => this.log.warn({ err }, 'cache: could not record a served answer for feedback')),
    );
  }

  /**
   * A client's verdict on a request's answer. Bad: an exact entry is removed, a semantic entry is
   * demoted (its threshold raised above the similarity that served it) or, the second time,
   * removed. Good: a semantic entry's threshold is lowered a step. Only the caller's tenant's
   * requests are found. Returns undefined when the request is unknown (or not answered through
   * the cache) within the feedback window.
   */
  async feedback(tenantId: string, requestId: string, good: boolean): Promise<{ record: ServedRecord; action: FeedbackAction } | undefined> {
    const text = await this.exact.get(this.feedbackKey(tenantId, requestId));
    if (text === undefined) return undefined;
    const record = JSON.parse(text) as ServedRecord;
    let action: FeedbackAction = 'none';
    if (!good && record.exactKey) {
      // Never serve this answer again for this exact request (a semantic hit's promoted copy included).
      await this.exact.delete(record.exactKey);
      action = 'removed';
    }
    const verify = this.policy(record.route).verify;
    if (verify && record.outcome === 'semantic' && record.semanticId && !record.counted) {
      // A verdict on a served candidate is a verification the client made: it feeds the estimate (once per request).
      this.verifier.record(record.route, record.semanticId, good, 'feedback', verify.maxErrorRate);
      await this.exact.set(this.feedbackKey(tenantId, requestId), JSON.stringify({ ...record, counted: true }), this.config.feedbackWindowMs);
    }
    if (this.semantic && record.semanticId) {
      if (!good && record.outcome !== 'semantic' && record.outcome !== 'stale') {
        // The answer itself is wrong (its own question got it): remove it by meaning too.
        await this.semantic.remove([record.semanticId]);
        action = 'removed';
      } else {
        const threshold = this.policy(record.route).threshold;
        const done = await this.semantic.feedback(record.semanticId, good, record.similarity ?? 1, threshold);
        if (done !== 'none') action = done;
      }
    }
    return { record, action };
  }

  /** Removes matching entries (exact and semantic); `filter.route` is a public model name. */
  async invalidate(filter: CacheFilter): Promise<{ exact: number; semantic: number }> {
    const f: CacheFilter = { ...filter };
    if (f.route !== undefined) f.route = encodeRoute(f.route);
    const [exact, semantic] = await Promise.all([this.exact.invalidate(f), this.semantic ? this.semantic.invalidate(f) : 0]);
    return { exact, semantic };
  }

  async stats(): Promise<{ exactEntries: number; semanticEntries: number; inFlight: number; guardRejections: number; embedder: string | null }> {
    return {
      exactEntries: await this.exact.size(),
      semanticEntries: this.semantic?.size ?? 0,
      inFlight: this.flights.size,
      guardRejections: this.semantic?.guardRejections ?? 0,
      embedder: this.semantic?.embedderId ?? null,
    };
  }

  async close(): Promise<void> {
    await this.semantic?.close();
    await this.exact.close();
  }

  private feedbackKey(tenantId: string, requestId: string): string {
    return `${tenantId}/${FEEDBACK_SEGMENT}/${encodeURIComponent(requestId)}`;
  }
}
