/**
 * The cache stage, around invoke (chat requests; embeddings pass through): one middleware.
 *
 * On the way in (`lookup`): decides whether the request may be cached (route mode, the request's
 * determinism, `x-tollgate-cache: force|skip|refresh`), then looks it up: the exact cache, then
 * an identical request in flight (single flight: it waits for that call's answer), then the
 * semantic cache. A hit sets `ctx.result` and ends the way in (escalation and invoke do not run).
 * A miss that may be stored leads a flight: identical requests arriving meanwhile share its
 * upstream call.
 *
 * On the way out (`handOff`): hands the leader's answer to its flight (JSON, or a stream fanned
 * out to every waiting client), which stores it when complete; when every deployment failed and
 * the route allows it, answers from the semantic cache with the relaxed threshold, marked stale.
 *
 * Every answer served from the cache or a shared call is remembered for POST /v1/feedback when it
 * is served; an answer this request stores, once stored. Served answers cost nothing but the
 * question's embedding (and a judge call, for a borderline candidate: src/cache/judge.ts): respond
 * bills them that and records the cost they saved, settle gives back their token reservation (a
 * hit is rate-limited by request count only). Cache failures never fail a request: they are
 * logged and treated as misses. Errors: 400 invalid_value (a bad x-tollgate-cache), or the
 * shared call's failure (502 upstream_error) for a request that waited on it.
 */
import { type CachedAnswer, parseAnswer, replayChunks } from '../../cache/answer.js';
import { cacheIdentity, decide, parseDirective } from '../../cache/key.js';
import type { CacheService } from '../../cache/service.js';
import { failedCheck } from '../../routing/escalation.js';
import type { FlightShare } from '../../cache/singleflight.js';
import type { SemanticEntry } from '../../cache/types.js';
import { GatewayError, isGatewayError } from '../../errors.js';
import type { ChatCompletion, ChatCompletionChunk } from '../../providers/types.js';
import type { CacheOutcome } from '../../storage/types.js';
import type { CacheState, ChatContext, ChatResult } from '../context.js';
import type { Middleware, Next } from '../pipeline.js';

const NO_IDLE = { rearm() {}, dispose() {} };

function iterate(chunks: ChatCompletionChunk[]): AsyncIterator<ChatCompletionChunk> {
  let i = 0;
  return {
    async next() {
      return i < chunks.length ? { done: false, value: chunks[i++] as ChatCompletionChunk } : { done: true, value: undefined };
    },
  };
}

/** A completion as the result the client asked for: JSON, or replayed as a stream. */
function resultOf(ctx: ChatContext, body: ChatCompletion): ChatResult {
  if (!ctx.body.stream) return { kind: 'chat', body };
  const chunks = replayChunks(body, true);
  const first = chunks.shift() as ChatCompletionChunk;
  return { kind: 'stream', first, rest: iterate(chunks), idle: NO_IDLE };
}

function setOutcome(ctx: ChatContext, state: CacheState, outcome: CacheOutcome): void {
  state.outcome = outcome;
  ctx.extraHeaders['x-tollgate-cache'] = outcome;
}

/** Remembers what served the request, for POST /v1/feedback. Answers this request stores are remembered once stored. */
function rememberServed(ctx: ChatContext, state: CacheState, cache: CacheService): void {
  if (!ctx.auth || !ctx.model) return;
  cache.remember(ctx.auth.tenantId, ctx.id, {
    outcome: state.outcome,
    route: ctx.model.name,
    ...(state.ident && state.outcome !== 'coalesced' ? { exactKey: state.ident.exactKey } : {}),
    ...(state.entryId ? { semanticId: state.entryId } : {}),
    ...(state.similarity !== undefined ? { similarity: state.similarity } : {}),
  });
}

/** Serves a cached answer. */
function serve(ctx: ChatContext, cache: CacheService, state: CacheState, answer: CachedAnswer, outcome: CacheOutcome, similarity?: number): void {
  setOutcome(ctx, state, outcome);
  state.served = true;
  ctx.extraHeaders['x-tollgate-model'] = answer.body.model;
  if (similarity !== undefined) {
    state.similarity = similarity;
    ctx.extraHeaders['x-tollgate-similarity'] = similarity.toFixed(4);
  }
  ctx.result = resultOf(ctx, answer.body);
  rememberServed(ctx, state, cache);
}

/** Serves a shared (coalesced) answer. */
function serveShared(ctx: ChatContext, cache: CacheService, state: CacheState, share: FlightShare): void {
  setOutcome(ctx, state, 'coalesced');
  state.served = true;
  if (share.kind === 'json') {
    ctx.extraHeaders['x-tollgate-model'] = share.body.model;
    ctx.result = resultOf(ctx, share.body);
  } else {
    ctx.extraHeaders['x-tollgate-model'] = share.first.model;
    ctx.result = { kind: 'stream', first: share.first, rest: share.rest, idle: NO_IDLE };
  }
  rememberServed(ctx, state, cache);
}

/** A large body is not keyed (hashing megabytes is synchronous work): it bypasses the cache (`cache.maxBodyBytes`). */
function tooLargeToKey(ctx: ChatContext, cache: CacheService): boolean {
  const declared = Number(ctx.headers['content-length']);
  const size = Number.isFinite(declared) ? declared : (ctx.admission?.promptTokens ?? 0) * 4;
  return size > cache.config.maxBodyBytes;
}

export function cacheMiddleware(cache: CacheService): Middleware {
  return async (ctx, next) => {
    if (ctx.operation !== 'chat') return next();
    await lookup(ctx, cache);
    if (ctx.result) return; // served: the way in ends here
    await handOff(ctx, cache, next);
  };
}

/** The way in: the exact cache, a flight in progress, the semantic cache; a miss leads a flight. */
async function lookup(ctx: ChatContext, cache: CacheService): Promise<void> {
  if (!cache.enabled || !ctx.auth || !ctx.model) return;
  const body = ctx.body;
  const directive = parseDirective(ctx.headers['x-tollgate-cache']);
  if (directive === undefined) {
    throw new GatewayError('invalid_value', "Header x-tollgate-cache must be one of 'force', 'skip' or 'refresh'.", { param: 'x-tollgate-cache' });
  }
  const route = ctx.model.name;
  const policy = cache.policy(route);
  const decision = decide(ctx.cacheMode ?? policy.mode, directive, body);
  const state: CacheState = { outcome: 'bypass', decision };
  ctx.cache = state;
  ctx.extraHeaders['x-tollgate-cache'] = 'bypass';
  if (!decision.store) return;
  if (tooLargeToKey(ctx, cache)) return;

  const tenantId = ctx.auth.tenantId;
  const semantic = policy.semantic ? cache.semantic : undefined;
  const ident = cacheIdentity(tenantId, route, body, semantic?.embedderId);
  state.ident = ident;
  setOutcome(ctx, state, 'miss');

  if (decision.lookup) {
    const answer = await cache.getExact(ident.exactKey);
    if (answer) {
      if (answer.semanticId) state.entryId = answer.semanticId;
      return serve(ctx, cache, state, answer, 'hit');
    }
    const flight = cache.config.singleFlight ? cache.flights.get(ident.exactKey) : undefined;
    if (flight && !flight.settled) {
      try {
        return serveShared(ctx, cache, state, await flight.share(body.stream === true, ctx.sink.signal));
      } catch (err) {
        if (ctx.sink.signal.aborted) ctx.clientAborted = true;
        throw isGatewayError(err) ? err : new GatewayError('upstream_error', `The shared upstream call failed: ${(err as Error).message}.`);
      }
    }
  }

  /** A semantic candidate this request verifies (verified semantic caching): it is answered upstream, as a miss. */
  let verifying: SemanticEntry | undefined;
  if (semantic && ident.scope && ident.question !== undefined && ident.question.length <= cache.config.semantic.maxQuestionChars) {
    try {
      const { vector, cost } = await semantic.embed(ident.question, ctx.sink.signal);
      state.vector = vector;
      if (cost) state.embedCostPico = cost.costPico;
      if (decision.lookup) {
        const question = ident.question;
        const judgePolicy = policy.judge;
        const judgeService = cache.judge;
        // Borderline candidates (just below the threshold) are put to the judge model (src/cache/judge.ts).
        const judge =
          judgePolicy && judgeService
            ? {
                band: judgePolicy.band,
                ask: async (cachedQuestion: string) => {
                  const r = await judgeService.judge({ route, tenantId, policy: judgePolicy, query: question, cached: cachedQuestion, signal: ctx.sink.signal });
                  // The judge's cost is the cache's own spending, billed with the request like the embedding.
                  if (r.costPico > 0) state.embedCostPico = (state.embedCostPico ?? 0) + r.costPico;
                  ctx.extraHeaders['x-tollgate-cache-judge'] = r.cached ? `${r.verdict}; cached` : r.verdict;
                  return r.verdict === 'yes';
                },
              }
            : undefined;
        const hit = await semantic.lookup(ident.scope, question, vector, policy.threshold, judge);
        if (hit) {
          const answer = parseAnswer(hit.entry.answer);
          const verdict = answer && policy.verify ? cache.verifyDecision(route, hit.entry.id) : undefined;
          if (answer && verdict?.verify) {
            verifying = hit.entry;
            ctx.log.debug({ reqId: ctx.id, entry: hit.entry.id, bound: verdict.bound, serveProbability: verdict.serveProbability }, 'cache: verifying a semantic candidate');
          } else if (answer) {
            state.entryId = hit.entry.id;
            // The same question again will be an exact hit (no embedding, no index search);
            // not on a route with a bound, where every use of an entry by meaning is a candidate.
            if (!policy.verify) cache.promote(ident.exactKey, hit.entry);
            return serve(ctx, cache, state, answer, 'semantic', hit.similarity);
          }
        }
      }
    } catch (err) {
      ctx.log.warn({ err, reqId: ctx.id }, 'cache: semantic lookup failed (served as a miss)');
    }
  }

  // A miss: lead a flight, so identical requests share this call and its answer is stored.
  const flight = cache.config.singleFlight && decision.lookup ? cache.flights.lead(ident.exactKey) : cache.flights.detached(ident.exactKey);
  state.leave = flight.attach(ctx.sink.signal);
  ctx.upstreamSignal = flight.signal;
  state.flight = flight;
  if (verifying) {
    const cached = verifying;
    ctx.extraHeaders['x-tollgate-cache'] = 'verify'; // billed and recorded as a miss (it is a real upstream call)
    flight.onComplete = (answer) => {
      void cache
        .completeVerification(ident, { tenantId, route, deployment: ctx.servedBy?.id ?? '', request: body, body: answer, cached, ...(state.vector ? { vector: state.vector } : {}) })
        .then(({ id }) => {
          if (id) state.entryId = id;
          cache.remember(tenantId, ctx.id, { outcome: 'miss', route, exactKey: ident.exactKey, ...(id ? { semanticId: id, similarity: 1 } : {}) });
        });
    };
    return;
  }
  flight.onComplete = (answer) => {
    void cache
      .store(ident, { tenantId, route, deployment: ctx.servedBy?.id ?? '', request: body, body: answer, ...(state.vector ? { vector: state.vector } : {}) })
      .then((id) => {
        if (id) state.entryId = id;
        cache.remember(tenantId, ctx.id, { outcome: 'miss', route, exactKey: ident.exactKey, ...(id ? { semanticId: id, similarity: 1 } : {}) });
      });
  };
}

/** Errors after which the last-resort fallback may answer from the cache: upstream failed, not the request. */
function isUpstreamFailure(err: unknown): boolean {
  return isGatewayError(err) && (err.status >= 500 || err.code === 'upstream_rate_limited') && err.status !== 499;
}

/** The way out: runs the rest (escalation, invoke), then hands the answer to the flight, or answers stale when every deployment failed. */
async function handOff(ctx: ChatContext, cache: CacheService, next: Next): Promise<void> {
  const state = ctx.cache;
  try {
    await next();
  } catch (err) {
    const stale = isUpstreamFailure(err) && ctx.model && !ctx.clientAborted ? await staleAnswer(ctx, cache) : undefined;
    if (!stale) {
      state?.flight?.fail(err);
      throw err;
    }
    ctx.log.warn({ reqId: ctx.id, err: (err as Error).message }, 'every deployment failed: answered from the cache (stale)');
    if (state?.flight) {
      state.flight.onComplete = undefined; // never store a stale answer as a fresh one
      state.flight.resolve(stale.answer.body);
    }
    return;
  }
  const flight = state?.flight;
  const result = ctx.result;
  if (!flight || !result) return;
  const escalate = ctx.routing?.route.config.escalate;
  if (result.kind === 'chat' && escalate && failedCheck(result.body, ctx.body, escalate.on)) {
    flight.onComplete = undefined; // an answer the route would have escalated (no tier could) is served, never stored
  }
  if (result.kind === 'chat') flight.resolve(result.body);
  else if (result.kind === 'stream') {
    const own = flight.stream(result);
    // From now on the leader takes part through its subscription: when it stops reading (its
    // client left, or its budget cut it off) and nobody else reads, upstream is aborted.
    state.leave?.();
    ctx.result = { kind: 'stream', first: own.first, rest: own.rest, idle: NO_IDLE };
  }
}

/** The last resort: the semantic cache at the relaxed threshold (and the exact entry, if still there). */
async function staleAnswer(ctx: ChatContext, cache: CacheService): Promise<{ answer: CachedAnswer } | undefined> {
  if (!cache.enabled || !ctx.auth || !ctx.model) return undefined;
  const route = ctx.model.name;
  const policy = cache.policy(route);
  if (!policy.staleFallback || tooLargeToKey(ctx, cache)) return undefined;
  const body = ctx.body;
  const state: CacheState = ctx.cache ?? { outcome: 'miss' };
  ctx.cache = state;
  try {
    const ident = state.ident ?? cacheIdentity(ctx.auth.tenantId, route, body, cache.semantic && policy.semantic ? cache.semantic.embedderId : undefined);
    const exact = await cache.getExact(ident.exactKey);
    if (exact) {
      serve(ctx, cache, state, exact, 'stale');
      return { answer: exact };
    }
    const semantic = policy.semantic ? cache.semantic : undefined;
    if (!semantic || !ident.scope || ident.question === undefined) return undefined;
    let vector = state.vector;
    if (!vector) {
      const embedded = await semantic.embed(ident.question);
      vector = embedded.vector;
      if (embedded.cost) state.embedCostPico = embedded.cost.costPico;
    }
    const hit = await semantic.lookup(ident.scope, ident.question, vector, policy.staleThreshold);
    const answer = hit ? parseAnswer(hit.entry.answer) : undefined;
    if (!hit || !answer) return undefined;
    state.entryId = hit.entry.id;
    serve(ctx, cache, state, answer, 'stale', hit.similarity);
    return { answer };
  } catch (err) {
    ctx.log.warn({ err, reqId: ctx.id }, 'cache: the stale fallback failed');
    return undefined;
  }
}
