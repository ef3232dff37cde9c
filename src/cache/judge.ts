/**
 * The judge for borderline semantic candidates (`cache.semantic.judge`, cache-wide or per route).
 *
 * A candidate the decision scores just below the route's threshold (`model` mode: its score;
 * `similarity` mode: its cosine, in [threshold − band, threshold)) is not refused at once: a small
 * chat model of the catalog is asked whether the two questions need the same answer (one fixed
 * prompt, temperature 0, max_tokens 3). "yes" lets the candidate answer (verification, when the
 * route has `maxErrorRate`, still applies); anything else, an error or the timeout refuses it (a
 * miss). The guard's hard refusals never reach the judge; one judge call per lookup at most (the
 * best borderline candidate, after no candidate passed outright).
 *
 * The call goes straight to the judge model's deployments, in their configured order, under one
 * deadline (`timeoutMs`) for them all; the request is never held longer than that (the call is
 * raced against the deadline, so a provider that ignores its abort signal cannot hold it either).
 * Its cost (the judge model's price for the tokens upstream reported) is added to the request's
 * cost and billed to the tenant (folded into CacheState.embedCostPico, the cache's own spending).
 *
 * Verdicts ("yes" / "no") are remembered in memory, per process, per route (LRU bounded by
 * `maxCachedVerdicts`), keyed by tenant, judge model and the two normalized questions (in either
 * order), so a repeated borderline pair costs one judge call. Errors and timeouts are not
 * remembered. Counts per route and verdict are kept for /metrics and GET /admin/v1/cache.
 *
 * Note: the questions are the users' own text; a question can try to talk the judge into "yes".
 * Candidates are always in the asker's own scope (tenant, route, context), so at worst a tenant is
 * served another of its own cached answers.
 */
import { costPico } from '../metering/cost.js';
import { countText } from '../metering/tokenizer.js';
import type { Logger } from '../observability/logger.js';
import { type ChatCompletion, UpstreamError } from '../providers/types.js';
import type { CatalogModel, Deployment } from '../routing/catalog.js';
import { normalizeAnswer } from './verify.js';

/** A route's judge settings (resolved: defaults applied). */
export interface JudgePolicy {
  /** A chat model of the catalog. */
  model: string;
  /** Width of the borderline band below the threshold (same scale as the threshold). */
  band: number;
  /** Deadline of the whole judge call, ms; past it the candidate is a miss. */
  timeoutMs: number;
  /** Verdicts remembered for the route (least recently used forgotten beyond). */
  maxCachedVerdicts: number;
}

export const DEFAULT_JUDGE_BAND = 0.1;
export const DEFAULT_JUDGE_TIMEOUT_MS = 1_500;
export const DEFAULT_MAX_CACHED_VERDICTS = 10_000;

export const JUDGE_QUESTION = 'Do these two questions need the same answer? Reply yes or no.';

export type JudgeVerdict = 'yes' | 'no' | 'error' | 'timeout';

export interface JudgeResult {
  verdict: JudgeVerdict;
  /** The verdict was remembered from an earlier call (no call made). */
  cached: boolean;
  /** What the call cost (pico-dollars; 0 for a remembered verdict or a failed call). */
  costPico: number;
  promptTokens: number;
  completionTokens: number;
}

/** A route's judge figures (this process). */
export interface RouteJudgeStats {
  route: string;
  model: string;
  /** Judge calls made, by verdict. */
  calls: Record<JudgeVerdict, number>;
  /** Borderline candidates decided by a remembered verdict (no call), by verdict. */
  cachedVerdicts: { yes: number; no: number };
  /** What the calls cost, pico-dollars. */
  costPico: number;
}

export interface CacheJudgeOptions {
  /** The catalog's model of that name (`catalog.resolve`). */
  resolve: (model: string) => CatalogModel | undefined;
  log: Logger;
}

/** The judge's prompt for two questions. */
export function judgePrompt(query: string, cached: string): string {
  return `Question 1: ${query}\n\nQuestion 2: ${cached}\n\n${JUDGE_QUESTION}`;
}

/** "yes" when the answer starts with yes (case, punctuation and whitespace ignored); "no" otherwise. */
export function parseVerdict(body: ChatCompletion): 'yes' | 'no' {
  const text = normalizeAnswer(body.choices[0]?.message.content ?? '');
  return /^yes\b/.test(text) ? 'yes' : 'no';
}

class Lru<V> {
  private readonly map = new Map<string, V>();
  constructor(private readonly max: number) {}
  get(key: string): V | undefined {
    const v = this.map.get(key);
    if (v !== undefined) {
      this.map.delete(key);
      this.map.set(key, v);
    }
    return v;
  }
  set(key: string, v: V): void {
    this.map.delete(key);
    if (this.map.size >= this.max) this.map.delete(this.map.keys().next().value!);
    this.map.set(key, v);
  }
  get size(): number {
    return this.map.size;
  }
}

export class CacheJudge {
  private readonly opts: CacheJudgeOptions;
  private readonly verdicts = new Map<string, Lru<'yes' | 'no'>>();
  private readonly routes = new Map<string, RouteJudgeStats>();

  constructor(opts: CacheJudgeOptions) {
    this.opts = opts;
  }

  /** Throws (naming `field`) when `model` is not a chat model of the catalog with deployments. */
  check(model: string, field: string): void {
    const m = this.opts.resolve(model);
    if (!m) throw new Error(`${field}: unknown model '${model}'`);
    if (m.type !== 'chat') throw new Error(`${field}: model '${model}' is a ${m.type} model, not a chat model`);
    if (m.deployments.length === 0) throw new Error(`${field}: model '${model}' has no deployments`);
  }

  /** Declares a route (listed in the admin API and /metrics before its first borderline candidate). */
  declare(route: string, model: string): RouteJudgeStats {
    let r = this.routes.get(route);
    if (!r) {
      r = { route, model, calls: { yes: 0, no: 0, error: 0, timeout: 0 }, cachedVerdicts: { yes: 0, no: 0 }, costPico: 0 };
      this.routes.set(route, r);
    }
    r.model = model;
    return r;
  }

  stats(): RouteJudgeStats[] {
    return [...this.routes.values()].map((r) => ({ ...r, calls: { ...r.calls }, cachedVerdicts: { ...r.cachedVerdicts } }));
  }

  /** Do `query` and `cached` need the same answer? Never rejects; never takes longer than `policy.timeoutMs`. */
  async judge(args: { route: string; tenantId: string; policy: JudgePolicy; query: string; cached: string; signal?: AbortSignal }): Promise<JudgeResult> {
    const { route, policy } = args;
    const stats = this.declare(route, policy.model);
    let lru = this.verdicts.get(route);
    if (!lru) {
      lru = new Lru(Math.max(1, policy.maxCachedVerdicts));
      this.verdicts.set(route, lru);
    }
    const a = normalizeAnswer(args.query);
    const b = normalizeAnswer(args.cached);
    const key = `${args.tenantId}\n${policy.model}\n${a < b ? `${a}\n${b}` : `${b}\n${a}`}`;
    const remembered = lru.get(key);
    if (remembered) {
      stats.cachedVerdicts[remembered]++;
      return { verdict: remembered, cached: true, costPico: 0, promptTokens: 0, completionTokens: 0 };
    }
    const result = await this.call(policy, args.query, args.cached, args.signal);
    stats.calls[result.verdict]++;
    stats.costPico += result.costPico;
    if (result.verdict === 'yes' || result.verdict === 'no') lru.set(key, result.verdict);
    return result;
  }

  private async call(policy: JudgePolicy, query: string, cached: string, signal: AbortSignal | undefined): Promise<JudgeResult> {
    const failed = (verdict: 'error' | 'timeout'): JudgeResult => ({ verdict, cached: false, costPico: 0, promptTokens: 0, completionTokens: 0 });
    const model = this.opts.resolve(policy.model);
    if (!model || model.deployments.length === 0) return failed('error');
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort(new UpstreamError('timeout', `the cache judge did not answer within ${policy.timeoutMs}ms`));
    }, policy.timeoutMs);
    const onAbort = () => controller.abort(signal?.reason ?? new UpstreamError('aborted', 'judge call aborted'));
    if (signal?.aborted) onAbort();
    else signal?.addEventListener('abort', onAbort, { once: true });
    // Whatever a provider does with its signal, the deadline ends the wait.
    const deadline = new Promise<never>((_, reject) => {
      if (controller.signal.aborted) reject(controller.signal.reason);
      controller.signal.addEventListener('abort', () => reject(controller.signal.reason), { once: true });
    });
    deadline.catch(() => undefined);
    const prompt = judgePrompt(query, cached);
    try {
      for (const dep of model.deployments) {
        if (controller.signal.aborted) break;
        try {
          const body = await Promise.race([this.ask(dep, prompt, controller.signal), deadline]);
          const verdict = parseVerdict(body);
          const promptTokens = body.usage?.prompt_tokens ?? countText(prompt);
          const completionTokens = body.usage?.completion_tokens ?? countText(body.choices[0]?.message.content ?? '');
          const price = dep.price ?? model.price;
          const cost = price ? costPico({ prompt_tokens: promptTokens, completion_tokens: completionTokens }, price) : 0;
          return { verdict, cached: false, costPico: cost, promptTokens, completionTokens };
        } catch (err) {
          if (controller.signal.aborted) break;
          this.opts.log.debug({ err, deployment: dep.id }, 'cache judge: deployment failed');
        }
      }
      return failed(timedOut ? 'timeout' : 'error');
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    }
  }

  private ask(dep: Deployment, prompt: string, signal: AbortSignal): Promise<ChatCompletion> {
    return dep.provider.chat(
      { model: dep.upstreamModel, messages: [{ role: 'user', content: prompt }], temperature: 0, max_tokens: 3, stream: false },
      { signal, upstreamModel: dep.upstreamModel },
    );
  }
}
