/**
 * Shadow traffic: a share of a route's requests is sent again, after the user's answer is
 * complete, to a candidate model; both answers are compared (similarity with the cache's
 * embedder, latency, cost) and the pair is stored for `GET /admin/v1/shadow/:route` and
 * `tollgate shadow report <route>`. Config: `routes.<name>.shadow` (shadowSchema).
 *
 * What a shadow call never does: delay or change the user's answer (it starts after the response,
 * is never awaited by the request, and never throws), touch the user's rate limits or budgets, or
 * move the user's circuit breakers (providers are called directly, with a timeout of their own).
 *
 * Spend is capped per tenant and day by `dailyBudgetUsd`, on a budget counter of its own
 * (`shadow:<tenant>:<YYYY-MM-DD>`, UTC): the worst case (prompt tokens + max output tokens at the
 * candidate's price) is reserved before the call and settled to the actual cost after; a call that
 * cannot reserve is skipped (`skippedBudget`). The counter is seeded at 0 when missing (shadow
 * spend is not separable in `Ledger.spent`), so in embedded mode a restart starts the day's shadow
 * budget afresh. Each shadow call is also a ledger event (`<eventId>~shadow`, route `shadow`), so
 * its spend appears in usage reports.
 *
 * At most `maxInFlight` (16) shadow calls run per process; more are dropped (`skippedBusy`).
 *
 * This file: which requests are mirrored, the calls in flight, and the steps of one mirror; the
 * call itself is in shadow-call.ts, the budget in shadow-budget.ts, the pair and the ledger event
 * in shadow-record.ts.
 */
import type { z } from 'zod';
import type { Embedder } from '../cache/types.js';
import type { RouteConfig, shadowSchema } from '../config/routing-schema.js';
import { costPico } from '../metering/cost.js';
import type { LedgerWriter } from '../metering/ledger-writer.js';
import { estimateUsage } from '../metering/tokenizer.js';
import type { Logger } from '../observability/logger.js';
import { type ChatCompletion, type ChatCompletionRequest, UpstreamError, type Usage } from '../providers/types.js';
import type { Counters } from '../storage/types.js';
import { bucketPoint } from './bucket.js';
import type { ModelCatalog } from './catalog.js';
import { reserveShadowBudget, shadowBudgetItem } from './shadow-budget.js';
import { type CallResult, callCandidate, describeFailure, failureStatus, ShadowCallError, toUpstreamError } from './shadow-call.js';
import { answerSimilarity, type ShadowOutcome, shadowEvent, shadowPair } from './shadow-record.js';
import type { ShadowStore } from './shadow-report.js';

export type ShadowConfig = z.infer<typeof shadowSchema>;

/** The shadow config of every route that has one: route name -> config. */
export function shadowRoutesOf(routes: Record<string, Pick<RouteConfig, 'shadow'>>): Record<string, ShadowConfig> {
  const out: Record<string, ShadowConfig> = {};
  for (const [name, r] of Object.entries(routes)) if (r.shadow) out[name] = r.shadow;
  return out;
}

/* ------------------------------------------------------------------------------------------ */
/* Service                                                                                     */
/* ------------------------------------------------------------------------------------------ */

export interface ShadowServiceOptions {
  /** Route name -> its shadow config (routes without one are never mirrored): see shadowRoutesOf. */
  routes: Record<string, ShadowConfig>;
  catalog: ModelCatalog;
  counters: Counters;
  store: ShadowStore;
  ledger: Pick<LedgerWriter, 'record'>;
  /** The cache's embedder, for the similarity of the two answers; undefined: no similarity. */
  embedder: Embedder | undefined;
  log: Logger;
  /** The whole shadow call (every deployment tried), ms; default 30 s. */
  timeoutMs?: number;
  /** Replaces the sticky sampling by request id (tests). */
  random?: () => number;
  /** Shadow calls in flight per process; more are dropped. Default 16. */
  maxInFlight?: number;
  /** Output tokens assumed for a request without max_tokens, when reserving; default 4096. */
  defaultMaxOutputTokens?: number;
  now?: () => number;
}

export interface MirrorInput {
  /** The request id (x-request-id): the sampling is sticky on it. */
  requestId: string;
  /** The ledger's id of the user's request: the pair's id, and `<eventId>~shadow` for the shadow's event. */
  eventId: string;
  tenantId: string;
  keyId: string;
  /** '' when unknown. */
  userId: string;
  /** The route (config `routes.<name>`) the request used. */
  route: string;
  /** The body the primary model answered. */
  body: ChatCompletionRequest;
  primary: {
    /** The public model that served the user. */
    model: string;
    latencyMs: number;
    promptTokens: number;
    completionTokens: number;
    costPico: number;
    /** The answer's text (see completionText). */
    text: string;
  };
}

export interface ShadowStats {
  /** Shadow calls made (budget reserved), failed ones included. */
  mirrored: number;
  /** Sampled requests not mirrored: the tenant's shadow budget for the day was spent. */
  skippedBudget: number;
  /** Sampled requests dropped: `maxInFlight` shadow calls were already running. */
  skippedBusy: number;
  /** Shadow calls that failed (error, timeout, no deployment answered), or could not start. */
  failed: number;
  inFlight: number;
}

/** The text of an answer as compared: the first choice's content, then its tool calls as `name(arguments)`. */
export function completionText(c: Pick<ChatCompletion, 'choices'>): string {
  const m = c.choices[0]?.message;
  if (!m) return '';
  let text = m.content ?? '';
  for (const call of m.tool_calls ?? []) text += `${text ? '\n' : ''}${call.function.name}(${call.function.arguments})`;
  return text;
}

export class ShadowService {
  private readonly timeoutMs: number;
  private readonly maxInFlight: number;
  private readonly defaultMaxOutputTokens: number;
  private readonly now: () => number;

  private readonly inFlight = new Set<Promise<void>>();
  /** Aborted at shutdown, when drain's time is up. */
  private readonly stopping = new AbortController();
  private closed = false;
  private readonly counts = { mirrored: 0, skippedBudget: 0, skippedBusy: 0, failed: 0 };

  constructor(private readonly opts: ShadowServiceOptions) {
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.maxInFlight = opts.maxInFlight ?? 16;
    this.defaultMaxOutputTokens = opts.defaultMaxOutputTokens ?? 4096;
    this.now = opts.now ?? Date.now;
  }

  /** The shadow config of a route, if it has one. */
  configOf(route: string): ShadowConfig | undefined {
    return Object.hasOwn(this.opts.routes, route) ? this.opts.routes[route] : undefined;
  }

  /** Whether a request of `route` is in the mirrored share (sticky on the request id unless `random` was given). */
  sampled(route: string, requestId: string): boolean {
    const cfg = this.configOf(route);
    if (!cfg || cfg.sampleRate <= 0) return false;
    if (cfg.sampleRate >= 1) return true;
    if (this.opts.random) return this.opts.random() < cfg.sampleRate;
    return bucketPoint(`shadow:${route}`, requestId) < cfg.sampleRate * 100;
  }

  /**
   * Mirrors the request to the route's candidate when it is sampled, in the background. Call once
   * the user's response is complete, for a chat completion the primary answered (status 200).
   * Never throws, never awaited by the request.
   */
  maybeMirror(input: MirrorInput): void {
    try {
      if (this.closed) return;
      const cfg = this.configOf(input.route);
      if (!cfg || !this.sampled(input.route, input.requestId)) return;
      if (cfg.model === input.primary.model) return; // the candidate served it: nothing to compare
      if (this.inFlight.size >= this.maxInFlight) {
        this.counts.skippedBusy++;
        return;
      }
      const run: Promise<void> = this.mirror(cfg, input)
        .catch((err: unknown) => {
          this.counts.failed++;
          this.opts.log.error({ err, reqId: input.requestId, route: input.route, shadow: cfg.model }, 'shadow call failed unexpectedly');
        })
        .finally(() => this.inFlight.delete(run));
      this.inFlight.add(run);
    } catch (err) {
      this.opts.log.error({ err, reqId: input.requestId, route: input.route }, 'could not start a shadow call');
    }
  }

  stats(): ShadowStats {
    return { ...this.counts, inFlight: this.inFlight.size };
  }

  /**
   * Shutdown: no new shadow calls; waits up to `timeoutMs` for those in flight, then aborts them
   * (recorded as failed pairs, status 503) and waits for them to be recorded.
   */
  async drain(timeoutMs: number): Promise<void> {
    this.closed = true;
    if (this.inFlight.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), Math.max(0, timeoutMs));
    });
    const outcome = await Promise.race([Promise.allSettled([...this.inFlight]), timedOut]);
    clearTimeout(timer);
    if (outcome === 'timeout') {
      this.stopping.abort(new UpstreamError('aborted', 'gateway shutting down'));
      // Aborted calls only record their pair and event now; give them a moment, not forever.
      await Promise.race([Promise.allSettled([...this.inFlight]), new Promise((r) => setTimeout(r, 1_000).unref())]);
    }
  }

  /* ---------------------------------------------------------------------------------------- */


  private async mirror(cfg: ShadowConfig, input: MirrorInput): Promise<void> {
    const startedAt = this.now();
    const model = this.opts.catalog.resolve(cfg.model);
    if (!model || model.type !== 'chat' || model.deployments.length === 0) {
      this.counts.failed++;
      this.opts.log.warn({ route: input.route, shadow: cfg.model }, 'shadow model is not a chat model of the catalog');
      await this.putPair(input, cfg.model, startedAt, { latencyMs: 0, usage: undefined, costPico: 0, similarity: null, status: 404, error: `model '${cfg.model}' is not in the catalog` });
      return;
    }

    // Budget: reserve the worst case at the candidate's price.
    const body = input.body;
    const maxOutput = (body.max_completion_tokens ?? body.max_tokens ?? this.defaultMaxOutputTokens) * (body.n ?? 1);
    const price = model.deployments[0]?.price ?? model.price;
    const reserved = price ? costPico({ prompt_tokens: input.primary.promptTokens, completion_tokens: maxOutput }, price) : 0;
    const budget = shadowBudgetItem(input.tenantId, cfg.dailyBudgetUsd, reserved, startedAt);
    let ok: boolean;
    try {
      ok = await reserveShadowBudget(this.opts.counters, budget);
    } catch (err) {
      this.counts.failed++;
      this.opts.log.warn({ err, route: input.route, tenant: input.tenantId }, 'shadow budget unavailable: request not mirrored');
      return;
    }
    if (!ok) {
      this.counts.skippedBudget++;
      return;
    }
    this.counts.mirrored++;

    const t0 = performance.now();
    let call: CallResult | undefined;
    let failure: ShadowCallError | undefined;
    try {
      call = await callCandidate(model.deployments, body, input.requestId, { timeoutMs: this.timeoutMs, stopping: this.stopping.signal });
    } catch (err) {
      failure = err instanceof ShadowCallError ? err : new ShadowCallError(toUpstreamError(err), 0, undefined);
    }
    const latencyMs = Math.round(performance.now() - t0);

    let usage: Usage | undefined;
    let usageReported = false;
    let cost = 0;
    let similarity: number | null = null;
    let embedCost = 0;
    if (call) {
      const text = completionText(call.completion);
      usage = call.completion.usage;
      usageReported = usage !== undefined;
      if (!usage) usage = await estimateUsage(body, text).catch(() => undefined);
      const depPrice = call.deployment.price ?? model.price;
      cost = usage && depPrice ? costPico(usage, depPrice) : 0;
      if (this.opts.embedder) {
        try {
          ({ similarity, costPico: embedCost } = await answerSimilarity(this.opts.embedder, input.primary.text, text, this.timeoutMs));
        } catch (err) {
          this.opts.log.warn({ err, reqId: input.requestId, route: input.route }, 'could not embed the shadow answers');
        }
      }
    } else {
      this.counts.failed++;
      this.opts.log.warn(
        { err: failure?.upstream, reqId: input.requestId, route: input.route, shadow: cfg.model },
        'shadow call failed',
      );
    }

    const spent = cost + embedCost;
    try {
      await this.opts.counters.settle(budget.key, reserved, spent, budget.ttlMs);
    } catch (err) {
      this.opts.log.warn({ err, tenant: input.tenantId }, 'could not settle the shadow budget');
    }

    const status = call ? 200 : failureStatus(failure!.upstream);
    const error = call ? '' : describeFailure(failure!.upstream);
    await this.putPair(input, cfg.model, startedAt, { latencyMs, usage, costPico: cost, similarity, status, error });

    const event = shadowEvent(input, cfg.model, startedAt, {
      served: call ? { deployment: call.deployment.id } : undefined,
      usage,
      usageReported,
      spentPico: spent,
      latencyMs,
      status,
      attempts: call ? call.attempts : (failure?.attempts ?? 0),
    });
    try {
      this.opts.ledger.record(event);
    } catch (err) {
      this.opts.log.error({ err, reqId: input.requestId }, 'could not record the shadow call in the ledger');
    }
  }

  private async putPair(input: MirrorInput, shadowModel: string, ts: number, r: ShadowOutcome): Promise<void> {
    try {
      await this.opts.store.put(shadowPair(input, shadowModel, ts, r));
    } catch (err) {
      this.opts.log.error({ err, reqId: input.requestId, route: input.route }, 'could not store the shadow pair');
    }
  }
}
