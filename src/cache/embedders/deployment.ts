/**
 * An embedder that calls one of the gateway's own embedding models (`models.<name>` with
 * `type: embedding`): any OpenAI-compatible /v1/embeddings upstream, e.g. a local model server,
 * or the simulator's `sim-embed`.
 *
 *   const embedder = new DeploymentEmbedder({ model: catalog.resolve('embed')!, dimensions: 256 });
 *   await embedder.init(); // once at start-up: probes the upstream, learns `dimensions` if not given
 *
 * Each call tries the model's deployments in their configured order and falls over to the next
 * one on any failure (upstream error, timeout, malformed answer); there are no retries beyond
 * that (the semantic cache prefers a miss to a slow request). The caller's abort stops at once.
 * Each attempt times out at the deployment's own `timeoutMs`, else the embedder's `timeoutMs`.
 *
 * Vectors come back as float arrays (or base64 float32, when an upstream sends that regardless),
 * are checked (one per text, all of one length, finite, not all zero) and L2-normalised into
 * Float32Arrays. The cost is the model's price for the prompt tokens upstream reported.
 *
 * Dimensions: given in the options, they are sent upstream (`dimensions`, for models that can
 * shorten their vectors) and every answer must have them. Not given, `init()` learns them from a
 * probe embedding; `id` and `dimensions` throw until then (or until the first `embed` call, which
 * fixes them the same way). Either way an answer of another length is an error: vectors of two
 * sizes never share one embedding space.
 */
import { costPico } from '../../metering/cost.js';
import { type EmbeddingResponse, UpstreamError } from '../../providers/types.js';
import type { CatalogModel, Deployment } from '../../routing/catalog.js';
import type { EmbedCost, EmbedResult, Embedder } from '../types.js';

export interface DeploymentEmbedderOptions {
  /** The catalog model to embed with (`catalog.resolve(name)`); it must be `type: embedding`. */
  model: CatalogModel;
  /** Vector size to ask for and to expect; unset: whatever the model gives (learnt by `init()`). */
  dimensions?: number;
  /** Per-attempt timeout for deployments without their own `timeoutMs` (default 10 000 ms). */
  timeoutMs?: number;
}

/** The text `init()` embeds to learn the dimensions and check the upstream works. */
export const PROBE_TEXT = 'tollgate embedder probe';

const DEFAULT_TIMEOUT_MS = 10_000;

export class DeploymentEmbedder implements Embedder {
  private readonly model: CatalogModel;
  private readonly requestedDimensions: number | undefined;
  private readonly timeoutMs: number;
  private knownDimensions: number | undefined;
  private initializing: Promise<void> | undefined;
  private closed = false;

  constructor(opts: DeploymentEmbedderOptions) {
    const { model } = opts;
    if (model.type !== 'embedding') {
      throw new Error(`semantic cache embedder: model '${model.name}' is a ${model.type} model, not an embedding model (set type: embedding)`);
    }
    if (model.deployments.length === 0) throw new Error(`semantic cache embedder: model '${model.name}' has no deployments`);
    if (opts.dimensions !== undefined && (!Number.isInteger(opts.dimensions) || opts.dimensions < 1)) {
      throw new Error(`semantic cache embedder: dimensions must be a positive integer, got ${opts.dimensions}`);
    }
    if (opts.timeoutMs !== undefined && !(opts.timeoutMs > 0)) {
      throw new Error(`semantic cache embedder: timeoutMs must be positive, got ${opts.timeoutMs}`);
    }
    this.model = model;
    this.requestedDimensions = opts.dimensions;
    this.knownDimensions = opts.dimensions;
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  /** `deployment:<model>:<dimensions>`. Throws before the dimensions are known (see `init()`). */
  get id(): string {
    return `deployment:${this.model.name}:${this.dimensions}`;
  }

  get dimensions(): number {
    if (this.knownDimensions === undefined) {
      throw new Error(`embedder for model '${this.model.name}': dimensions are not known yet; call init() first`);
    }
    return this.knownDimensions;
  }

  /**
   * Embeds a probe text once: checks that the model answers and learns the dimensions when they
   * were not configured. Call (and await) it at start-up; later calls return the same promise.
   * Rejects when every deployment fails, and may then be called again.
   */
  init(opts: { signal?: AbortSignal } = {}): Promise<void> {
    this.initializing ??= this.embed([PROBE_TEXT], opts).then(
      () => undefined,
      (err: unknown) => {
        this.initializing = undefined;
        throw err;
      },
    );
    return this.initializing;
  }

  async embed(texts: string[], opts: { signal?: AbortSignal } = {}): Promise<EmbedResult> {
    if (this.closed) throw new Error(`embedder for model '${this.model.name}' is closed`);
    if (texts.length === 0) return { vectors: [] };
    const failures: string[] = [];
    let lastError: unknown;
    for (const dep of this.model.deployments) {
      if (opts.signal?.aborted) throw abortReason(opts.signal);
      try {
        const response = await this.attempt(dep, texts, opts.signal);
        const vectors = this.decode(response, texts.length);
        this.knownDimensions ??= vectors[0]?.length;
        return { vectors, cost: this.cost(response) };
      } catch (err) {
        if (opts.signal?.aborted) throw abortReason(opts.signal);
        lastError = err;
        failures.push(`${dep.id}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    const n = this.model.deployments.length;
    throw new Error(
      `embedding model '${this.model.name}' failed on ${n === 1 ? 'its deployment' : `all ${n} deployments`}: ${failures.join('; ')}`,
      { cause: lastError },
    );
  }

  /** The providers belong to the gateway (it closes them); this only stops further calls. */
  async close(): Promise<void> {
    this.closed = true;
  }

  private async attempt(dep: Deployment, texts: string[], signal: AbortSignal | undefined): Promise<EmbeddingResponse> {
    const timeoutMs = dep.timeoutMs ?? this.timeoutMs;
    const controller = new AbortController();
    const onAbort = () => controller.abort(signal?.reason ?? new UpstreamError('aborted', 'embedding call aborted'));
    signal?.addEventListener('abort', onAbort, { once: true });
    const timer = setTimeout(() => controller.abort(new UpstreamError('timeout', `attempt timed out after ${timeoutMs}ms`)), timeoutMs);
    try {
      const request = {
        model: dep.upstreamModel,
        input: texts,
        ...(this.requestedDimensions !== undefined ? { dimensions: this.requestedDimensions } : {}),
      };
      // A provider that ignores the signal would hang past the timeout: race it.
      return await Promise.race([
        dep.provider.embed(request, { signal: controller.signal, upstreamModel: dep.upstreamModel }),
        new Promise<never>((_, reject) => {
          if (controller.signal.aborted) reject(controller.signal.reason);
          controller.signal.addEventListener('abort', () => reject(controller.signal.reason), { once: true });
        }),
      ]);
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    }
  }

  /** The answer's vectors in input order, checked and L2-normalised. */
  private decode(response: EmbeddingResponse, count: number): Float32Array[] {
    const data = (response as Partial<EmbeddingResponse> | undefined)?.data;
    if (!Array.isArray(data)) throw new Error('malformed embeddings answer: no data array');
    if (data.length !== count) throw new Error(`embeddings answer has ${data.length} vectors for ${count} inputs`);
    const vectors = new Array<Float32Array | undefined>(count);
    data.forEach((item, position) => {
      const index = typeof item?.index === 'number' ? item.index : position;
      if (!Number.isInteger(index) || index < 0 || index >= count || vectors[index] !== undefined) {
        throw new Error(`embeddings answer has an invalid or repeated index ${String(item?.index)}`);
      }
      vectors[index] = toVector(item?.embedding, index);
    });
    const out = vectors as Float32Array[];
    const expected = this.knownDimensions ?? out[0]!.length;
    for (let i = 0; i < out.length; i++) {
      const length = out[i]!.length;
      if (length !== expected) {
        throw new Error(
          this.knownDimensions === undefined
            ? `embeddings answer mixes vector lengths: vector 0 has ${expected} dimensions, vector ${i} has ${length}`
            : `vector ${i} has ${length} dimensions; this embedder's space has ${expected}` +
                (this.requestedDimensions === undefined ? '' : ' (configured dimensions: does the upstream support the dimensions parameter?)'),
        );
      }
      normalize(out[i]!, i);
    }
    return out;
  }

  private cost(response: EmbeddingResponse): EmbedCost {
    const reported = response.usage?.prompt_tokens;
    const promptTokens = typeof reported === 'number' && Number.isFinite(reported) && reported > 0 ? Math.round(reported) : 0;
    const price = this.model.price;
    return {
      model: this.model.name,
      promptTokens,
      costPico: price ? costPico({ prompt_tokens: promptTokens, completion_tokens: 0 }, price) : 0,
    };
  }
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new UpstreamError('aborted', 'embedding call aborted');
}

/** A float array, or OpenAI's base64 of little-endian float32s, as a fresh Float32Array. */
function toVector(embedding: unknown, index: number): Float32Array {
  if (Array.isArray(embedding)) {
    if (embedding.length === 0) throw new Error(`vector ${index} is empty`);
    const v = new Float32Array(embedding.length);
    for (let i = 0; i < embedding.length; i++) {
      const x = embedding[i];
      if (typeof x !== 'number') throw new Error(`vector ${index} holds a non-number at ${i}`);
      v[i] = x;
    }
    return v;
  }
  if (typeof embedding === 'string') {
    const bytes = Buffer.from(embedding, 'base64');
    if (bytes.length === 0 || bytes.length % 4 !== 0) {
      throw new Error(`vector ${index}: base64 embedding of ${bytes.length} bytes is not a float32 array`);
    }
    const v = new Float32Array(bytes.length / 4);
    for (let i = 0; i < v.length; i++) v[i] = bytes.readFloatLE(i * 4);
    return v;
  }
  throw new Error(`vector ${index} is neither a float array nor base64`);
}

/** Scales `v` to unit length in place; throws on non-finite values or an all-zero vector. */
function normalize(v: Float32Array, index: number): void {
  let sum = 0;
  for (let i = 0; i < v.length; i++) sum += v[i]! * v[i]!;
  if (!Number.isFinite(sum)) throw new Error(`vector ${index} holds non-finite values`);
  if (sum === 0) throw new Error(`vector ${index} is all zeros`);
  const inv = 1 / Math.sqrt(sum);
  for (let i = 0; i < v.length; i++) v[i] = v[i]! * inv;
}
