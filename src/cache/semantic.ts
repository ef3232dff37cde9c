/**
 * The semantic cache: a question's vector looked up among the cached questions of the same scope
 * (tenant, route, system prompt and earlier conversation, parameters, embedder: see key.ts).
 *
 * The nearest `candidates` entries are examined, most similar first; the first that may answer
 * does. Two ways to decide (`cache.semantic.decision`):
 *
 * - `model` (the default): the decision (decision.ts) scores the pair (query, cached question)
 *   from several signals (built-in embedder cosine, the content words each side does not share
 *   weighted by IDF, the guard's findings, question type, word order...) and the candidate
 *   answers when the score reaches the route's threshold (a score in [0, 1], default the fitted
 *   operating point, tuning.ts). Candidates whose built-in cosine is below the model's prefilter
 *   for that threshold (`minCosineAt`: fitted, drops 0.5% of the reuse at most) are skipped
 *   without reading them from the store.
 * - `similarity`: the candidate answers when its cosine similarity reaches the threshold (the
 *   embedder's scale; for model embedders whose similarities mean more than shared wording).
 *
 * Either way, with the guard on (`cache.semantic.guard`), a candidate whose numbers, names,
 * negations or opposites differ (guard.ts) is refused whatever its score. With a judge
 * (`cache.semantic.judge`, judge.ts), a candidate just below the threshold (within `band`) that
 * passed the guard is put to a small model when no candidate passes outright.
 *
 * Per-entry thresholds learn from feedback on verified reuse (after vCache). They are on the
 * cosine similarity in both modes: a "bad" report on a semantic hit at similarity s sets the
 * entry's similarity floor above s, so that question (and any less similar one) no longer reuses
 * it; a second bad report removes the entry; a "good" report lowers the floor by a small step
 * (`similarity` mode: never below the route's threshold minus `maxRelax`; `model` mode: an entry
 * without a floor has nothing to lower, the decision's threshold still applies).
 *
 * Entries live in the SemanticStore (durable); the vector index is in process, rebuilt from the
 * store at start and kept in sync with the other processes' changes (store.subscribe).
 */
import type { Logger } from '../observability/logger.js';
import { type CacheDecision, DECISION_EMBEDDER_ID } from './decision.js';
import type { CacheFilter, EmbedCost, Embedder, HitGuard, SemanticChange, SemanticEntry, SemanticStore, VectorIndex } from './types.js';

export interface SemanticHit {
  entry: SemanticEntry;
  /** Cosine similarity of the two questions' vectors (the configured embedder's). */
  similarity: number;
  /** The decision's score (`model` mode). */
  score?: number;
  /** A borderline candidate the judge accepted (src/cache/judge.ts). */
  judged?: boolean;
}

/** The judge for borderline candidates, for one lookup (src/cache/judge.ts). */
export interface LookupJudge {
  /** Width of the band below the threshold (the threshold's scale). */
  band: number;
  /** Do the question and this cached question need the same answer? Never rejects. */
  ask(cachedQuestion: string): Promise<boolean>;
}

export interface SemanticCacheOptions {
  embedder: Embedder;
  index: VectorIndex;
  store: SemanticStore;
  /** No guard: the threshold alone decides. */
  guard: HitGuard | undefined;
  /** The decision (`model` mode: thresholds are on its score); undefined: thresholds are on the similarity. */
  decision?: CacheDecision | undefined;
  /** Nearest entries examined per lookup. */
  candidates: number;
  log: Logger;
  /** How far good feedback may lower an entry's threshold below the route's. */
  maxRelax?: number;
}

/** Margin above the similarity of a wrong hit that a bad report sets the entry's threshold to. */
const BAD_MARGIN = 0.01;
/** Entries indexed between two yields of the event loop while rebuilding. */
const YIELD_EVERY = 256;
/** Step a good report lowers an entry's threshold by. */
const GOOD_STEP = 0.005;

export class SemanticCache {
  private readonly opts: SemanticCacheOptions;
  /** Learned thresholds (entries without one use the route's). */
  private readonly thresholds = new Map<string, number>();
  /** Bad reports per entry. */
  private readonly strikes = new Map<string, number>();
  private unsubscribe: (() => void) | undefined;
  /** Guard refusals since start (metrics). */
  guardRejections = 0;
  /** Candidates the decision scored below the threshold since start. */
  decisionRejections = 0;
  /** The embedder's similarities are the decision's cosine feature as they are (builtin:v1:256). */
  private readonly builtinSimilarity: boolean;

  constructor(opts: SemanticCacheOptions) {
    this.opts = opts;
    this.builtinSimilarity = opts.embedder.id === DECISION_EMBEDDER_ID;
  }

  /** The decision, in `model` mode. */
  get decision(): CacheDecision | undefined {
    return this.opts.decision;
  }

  get embedderId(): string {
    return this.opts.embedder.id;
  }

  get embedder(): Embedder {
    return this.opts.embedder;
  }

  get size(): number {
    return this.opts.index.size;
  }

  /**
   * Follows the other processes' changes, then rebuilds the index from the store in the
   * background: the gateway serves at once (lookups see the entries loaded so far), and the
   * event loop is yielded every few hundred entries (a 100k-entry scope takes tens of seconds
   * to index). `loaded` resolves with the count when done.
   */
  async start(): Promise<void> {
    this.unsubscribe = this.opts.store.subscribe((change) => this.apply(change));
    // Shared stores (Redis): listen before the scan so no change falls between the two, and
    // rebuild after a lost connection (pub/sub drops what it missed).
    const shared = this.opts.store as SemanticStore & { whenSubscribed?: () => Promise<void>; onResync?: (cb: () => void) => void };
    shared.onResync?.(() => {
      this.resync().catch((err: unknown) => this.opts.log.warn({ err }, 'semantic cache: could not reload the index'));
    });
    await shared.whenSubscribed?.();
    this.loaded = this.rebuild();
  }

  /** Resolves with the number of entries indexed once the start-up rebuild is done. */
  loaded: Promise<number> = Promise.resolve(0);
  private closed = false;

  private async rebuild(): Promise<number> {
    let loaded = 0;
    const stale: string[] = [];
    await this.opts.store.scan(async (entries) => {
      for (let i = 0; i < entries.length; i++) {
        if (this.closed) return;
        const e = entries[i] as SemanticEntry;
        if (e.embedder !== this.opts.embedder.id || e.vector.length !== this.opts.embedder.dimensions) {
          stale.push(e.id); // made by another embedder (config changed): never comparable
          continue;
        }
        this.addToIndex(e);
        loaded++;
        if (loaded % YIELD_EVERY === 0) await new Promise((r) => setImmediate(r));
      }
    });
    if (stale.length > 0 && !this.closed) await this.opts.store.delete(stale);
    return loaded;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.unsubscribe?.();
    await this.loaded.catch(() => 0);
    await this.opts.embedder.close();
    await this.opts.store.close();
  }

  async embed(question: string, signal?: AbortSignal): Promise<{ vector: Float32Array; cost?: EmbedCost }> {
    const { vectors, cost } = await this.opts.embedder.embed([question], signal ? { signal } : undefined);
    const vector = vectors[0];
    if (!vector) throw new Error('the embedder returned no vector');
    return cost ? { vector, cost } : { vector };
  }

  /**
   * The best entry of `scope` that may answer `question`, or undefined. With a `judge`, when no
   * candidate reaches the threshold, the best one within `judge.band` below it (past the guard,
   * and, in `similarity` mode, without a floor learned from feedback) is put to the judge: one
   * call per lookup at most.
   */
  async lookup(scope: string, question: string, vector: Float32Array, threshold: number, judge?: LookupJudge): Promise<SemanticHit | undefined> {
    const neighbours = this.opts.index.search(scope, vector, this.opts.candidates);
    const decision = this.opts.decision;
    const lowest = judge ? Math.max(0, threshold - judge.band) : threshold;
    const minCosine = decision && this.builtinSimilarity ? decision.minCosineAt(lowest) : 0;
    /** The best borderline candidate seen (highest score, or similarity). */
    let borderline: { hit: SemanticHit; rank: number } | undefined;
    for (const n of neighbours) {
      let belowThreshold = false;
      if (decision) {
        if (n.similarity < minCosine) continue;
        const floor = this.thresholds.get(n.id);
        if (floor !== undefined && n.similarity < floor) continue;
      } else if (n.similarity < this.thresholdOf(n.id, threshold)) {
        if (!judge || this.thresholds.has(n.id) || n.similarity < lowest || (borderline && borderline.rank >= n.similarity)) continue;
        belowThreshold = true;
      }
      const entry = await this.opts.store.get(n.id);
      if (!entry || entry.scope !== scope) {
        if (!entry) this.opts.index.remove(n.id); // expired or removed elsewhere
        continue;
      }
      if (this.opts.guard) {
        const verdict = this.opts.guard.check(question, entry.question);
        if (!verdict.ok) {
          this.guardRejections++;
          this.opts.log.debug({ entry: entry.id, similarity: n.similarity, reason: verdict.reason }, 'semantic cache: near hit refused by the guard');
          continue;
        }
      }
      if (decision) {
        const { score } = decision.decide(question, entry.question, this.builtinSimilarity ? n.similarity : undefined);
        if (score < threshold) {
          if (judge && score >= lowest) {
            if (!borderline || score > borderline.rank) borderline = { hit: { entry, similarity: n.similarity, score }, rank: score };
            continue;
          }
          this.decisionRejections++;
          this.opts.log.debug({ entry: entry.id, similarity: n.similarity, score, threshold }, 'semantic cache: near hit refused by the decision');
          continue;
        }
        return { entry, similarity: n.similarity, score };
      }
      if (belowThreshold) {
        borderline = { hit: { entry, similarity: n.similarity }, rank: n.similarity };
        continue;
      }
      return { entry, similarity: n.similarity };
    }
    if (borderline && judge) {
      const { hit } = borderline;
      if (await judge.ask(hit.entry.question)) {
        this.opts.log.debug({ entry: hit.entry.id, similarity: hit.similarity, score: hit.score, threshold }, 'semantic cache: borderline candidate accepted by the judge');
        return { ...hit, judged: true };
      }
      this.decisionRejections++;
      this.opts.log.debug({ entry: hit.entry.id, similarity: hit.similarity, score: hit.score, threshold }, 'semantic cache: borderline candidate refused by the judge');
    }
    return undefined;
  }

  /**
   * Stores an answer for `question`. The store holds the tenant to its share (the entries it
   * evicted leave the index too); the index's own bounds evict what they push out of the store.
   */
  async put(entry: SemanticEntry): Promise<void> {
    const dropped = await this.opts.store.put(entry);
    for (const id of dropped) this.forget(id);
    const evicted = this.addToIndex(entry);
    if (evicted.length > 0) await this.opts.store.delete(evicted);
  }

  async remove(ids: string[]): Promise<void> {
    for (const id of ids) this.forget(id);
    await this.opts.store.delete(ids);
  }

  async invalidate(filter: CacheFilter): Promise<number> {
    const ids = await this.opts.store.invalidate(filter);
    for (const id of ids) this.forget(id);
    return ids.length;
  }

  /**
   * Feedback on a request this entry answered (`similarity` of a semantic hit; 1 for the request
   * that stored it). Returns what was done. `routeThreshold` is the route's similarity threshold
   * in `similarity` mode (unused in `model` mode, where it is a score: floors are similarities).
   */
  async feedback(id: string, good: boolean, similarity: number, routeThreshold: number): Promise<'removed' | 'demoted' | 'promoted' | 'none'> {
    if (!this.opts.index.has(id)) return 'none';
    const learned = this.thresholds.get(id);
    if (good && this.opts.decision) {
      if (learned === undefined) return 'none';
      const lowered = Math.max(0, learned - GOOD_STEP);
      if (lowered >= learned) return 'none';
      await this.setThreshold(id, lowered);
      return 'promoted';
    }
    const current = this.opts.decision ? (learned ?? 0) : this.thresholdOf(id, routeThreshold);
    if (!good) {
      const strikes = (this.strikes.get(id) ?? 0) + 1;
      if (strikes >= 2 || similarity >= 1 - 1e-6) {
        await this.remove([id]);
        return 'removed';
      }
      this.strikes.set(id, strikes);
      const raised = Math.min(1, Math.max(current, similarity + BAD_MARGIN));
      await this.setThreshold(id, raised);
      return 'demoted';
    }
    const floor = routeThreshold - (this.opts.maxRelax ?? 0.03);
    const lowered = Math.max(floor, current - GOOD_STEP);
    if (lowered >= current) return 'none';
    await this.setThreshold(id, lowered);
    return 'promoted';
  }

  private thresholdOf(id: string, routeThreshold: number): number {
    return this.thresholds.get(id) ?? routeThreshold;
  }

  private async setThreshold(id: string, threshold: number): Promise<void> {
    this.thresholds.set(id, threshold);
    await this.opts.store.setThreshold(id, threshold);
  }

  private addToIndex(entry: SemanticEntry): string[] {
    if (entry.threshold !== null) this.thresholds.set(entry.id, entry.threshold);
    const evicted = this.opts.index.add(entry.scope, entry.id, entry.vector);
    for (const id of evicted) this.forgetMeta(id);
    return evicted;
  }

  private forget(id: string): void {
    this.opts.index.remove(id);
    this.forgetMeta(id);
  }

  private forgetMeta(id: string): void {
    this.thresholds.delete(id);
    this.strikes.delete(id);
    this.onForget?.(id);
  }

  /** Told when an entry leaves the index (evicted, removed, invalidated): the service drops its verification state. */
  onForget: ((id: string) => void) | undefined;

  /** Another process changed the store. */
  private apply(change: SemanticChange): void {
    switch (change.kind) {
      case 'put':
        if (change.entry.embedder === this.opts.embedder.id) this.addToIndex(change.entry);
        break;
      case 'delete':
        for (const id of change.ids) this.forget(id);
        break;
      case 'threshold':
        if (change.threshold === null) this.thresholds.delete(change.id);
        else this.thresholds.set(change.id, change.threshold);
        break;
      case 'invalidate':
        this.resync().catch((err: unknown) => this.opts.log.warn({ err }, 'semantic cache: could not reload the index'));
        break;
    }
  }

  /** Rebuilds the index from the store (after an invalidation elsewhere, or a lost connection). */
  async resync(): Promise<void> {
    await this.loaded.catch(() => 0);
    this.opts.index.clear();
    this.thresholds.clear();
    this.strikes.clear();
    this.loaded = this.rebuild();
    await this.loaded;
  }
}
