/**
 * Builds the cache from config: the embedder the config names, the vector index, the guard, and
 * the semantic cache over the storage backend's stores (rebuilt from them before the gateway
 * takes requests). Called by the composition root.
 */
import { type CacheConfig, type EmbedderConfig, tenantShares } from '../config/cache-schema.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../observability/logger.js';
import type { ModelCatalog } from '../routing/catalog.js';
import { CacheDecision } from './decision.js';
import { createHitGuard } from './guard.js';
import { SemanticCache } from './semantic.js';
import { CacheService } from './service.js';
import type { CacheJudge } from './judge.js';
import type { Embedder, ExactStore, SemanticStore } from './types.js';
import { HnswVectorIndex } from './vector-index.js';

export async function createEmbedder(cfg: EmbedderConfig, catalog: ModelCatalog): Promise<Embedder> {
  switch (cfg.kind) {
    case 'builtin': {
      const { BuiltinEmbedder } = await import('./embedders/builtin.js');
      return new BuiltinEmbedder(cfg.dimensions === undefined ? {} : { dimensions: cfg.dimensions });
    }
    case 'deployment': {
      const { DeploymentEmbedder } = await import('./embedders/deployment.js');
      const model = catalog.resolve(cfg.model);
      if (!model) throw new Error(`cache.semantic.embedder.model: unknown model '${cfg.model}'`);
      const embedder = new DeploymentEmbedder({ model, timeoutMs: cfg.timeoutMs, ...(cfg.dimensions ? { dimensions: cfg.dimensions } : {}) });
      try {
        await embedder.init();
      } catch (err) {
        throw new Error(`cache.semantic.embedder: the embedding model '${cfg.model}' did not answer: ${(err as Error).message}`, { cause: err });
      }
      return embedder;
    }
    case 'onnx': {
      const { OnnxEmbedder } = await import('./embedders/onnx.js');
      return OnnxEmbedder.load(cfg.dir, { maxSequenceLength: cfg.maxSequenceLength });
    }
  }
}

export interface CreateCacheOptions {
  config: Pick<Config, 'cache' | 'models' | 'routes'>;
  catalog: ModelCatalog;
  exact: ExactStore;
  /** The backend's semantic store; not opened when the semantic cache is off. */
  semanticStore: () => Promise<SemanticStore>;
  log: Logger;
  /** The judge for borderline semantic candidates (cache.semantic.judge). */
  judge?: CacheJudge | undefined;
  /** Verified semantic caching's serve-or-verify draw (tests: a deterministic one). */
  random?: (() => number) | undefined;
}

function semanticWanted(config: Pick<Config, 'cache' | 'models' | 'routes'>): boolean {
  const c: CacheConfig = config.cache;
  if (!c.enabled) return false;
  if (c.semantic.enabled) return true;
  return [...Object.values(config.models), ...Object.values(config.routes)].some((m) => m.cache?.semantic?.enabled === true);
}

export async function createCache(opts: CreateCacheOptions): Promise<CacheService> {
  const { config, log } = opts;
  const routes = Object.fromEntries([
    ...Object.entries(config.models).map(([name, m]) => [name, m.cache] as const),
    ...Object.entries(config.routes).map(([name, r]) => [name, r.cache] as const),
  ]);
  let semantic: SemanticCache | undefined;
  if (semanticWanted(config)) {
    const s = config.cache.semantic;
    const embedder = await createEmbedder(s.embedder, opts.catalog);
    const store = await opts.semanticStore();
    semantic = new SemanticCache({
      embedder,
      store,
      index: new HnswVectorIndex({ dimensions: embedder.dimensions, maxEntries: s.maxEntries, maxEntriesPerTenant: tenantShares(config.cache).semanticEntries }),
      guard: s.guard ? createHitGuard() : undefined,
      decision: s.decision === 'model' ? new CacheDecision() : undefined,
      candidates: s.candidates,
      log,
    });
    await semantic.start();
    const started = performance.now();
    semantic.loaded.then(
      (entries) => log.info({ entries, embedder: embedder.id, ms: Math.round(performance.now() - started) }, 'semantic cache index rebuilt'),
      (err: unknown) => log.error({ err }, 'semantic cache: could not rebuild the index (entries stored before this start are not found until they are stored again)'),
    );
  }
  return new CacheService({ config: config.cache, routes, exact: opts.exact, semantic, log, judge: opts.judge, random: opts.random });
}
