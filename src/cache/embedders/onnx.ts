/**
 * A local sentence-embedding model run in process with ONNX Runtime (`onnxruntime-node`, an
 * optional dependency loaded only when this embedder is configured).
 *
 *   const embedder = await OnnxEmbedder.load('/models/all-MiniLM-L6-v2', { maxSequenceLength: 256 });
 *
 * The directory has the Hugging Face / sentence-transformers export layout: `model.onnx` (or
 * `onnx/model.onnx`, with any external-data files beside it), `tokenizer.json`, optionally
 * `tokenizer_config.json` and `config.json` (its `max_position_embeddings` caps the sequence
 * length). `load()` reads and checks all of it, opens the session and embeds a probe text to learn
 * the dimensions, so a loaded embedder is ready: there is no separate `init()`.
 *
 * Per call: each text is tokenized with its tokenizer.json (@huggingface/tokenizers), truncated to
 * `maxSequenceLength` tokens (special tokens kept: `[CLS] head… [SEP]`), and a batch of texts is
 * padded and run at once with `input_ids`, `attention_mask` and, when the model declares it,
 * `token_type_ids`. Output: `sentence_embedding` (already pooled, [batch, dims]) when the model
 * has it, else `last_hidden_state` (or the first output) [batch, seq, dims] mean-pooled over the
 * attention mask; then L2-normalised.
 *
 * id: `onnx:<directory name>:<first 12 hex of the sha256 of model.onnx>:<dims>`, so a changed
 * model file is a new embedding space.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import type { EmbedResult, Embedder } from '../types.js';

export interface OnnxEmbedderOptions {
  /** Tokens per text, special tokens included (default 256; capped by config.json's max_position_embeddings). */
  maxSequenceLength?: number;
  /** Texts per session run (default 32); a larger call runs several batches in turn. */
  batchSize?: number;
  /** ONNX Runtime intra-op threads (default 1: leaves the other cores to the gateway). */
  threads?: number;
  /** Loads the runtime module (tests only: default `import('onnxruntime-node')`). */
  loadRuntime?: () => Promise<unknown>;
}

/** The text embedded at load time to learn the dimensions and prove the model runs. */
export const PROBE_TEXT = 'tollgate embedder probe';

const RUNTIME_PACKAGE = 'onnxruntime-node';
const CONFIG_FIELD = 'cache.semantic.embedder (kind: onnx)';
/** Texts are cut to this many characters per allowed token before tokenizing (bounds the work on huge inputs). */
const CHARS_PER_TOKEN_BOUND = 64;

/* The part of onnxruntime-node's API used here (typed locally: the package is optional). */
interface OrtTensor {
  readonly dims: readonly number[];
  readonly type: string;
  readonly data: unknown;
}
interface OrtValueMetadata {
  readonly name: string;
  readonly isTensor: boolean;
  readonly type?: string;
}
interface OrtSession {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  readonly inputMetadata?: readonly OrtValueMetadata[];
  run(feeds: Record<string, OrtTensor>, fetches: string[]): Promise<Record<string, OrtTensor | undefined>>;
  release(): Promise<void>;
}
interface OrtModule {
  InferenceSession: { create(path: string, options?: Record<string, unknown>): Promise<OrtSession> };
  Tensor: new (type: 'int64' | 'int32', data: BigInt64Array | Int32Array, dims: readonly number[]) => OrtTensor;
}

let defaultRuntime: Promise<OrtModule> | undefined;

async function loadRuntime(loader?: () => Promise<unknown>): Promise<OrtModule> {
  const load = async (): Promise<OrtModule> => {
    let mod: unknown;
    try {
      // A variable specifier: the gateway builds and type-checks without the optional package.
      const specifier: string = RUNTIME_PACKAGE;
      mod = await (loader ? loader() : import(specifier));
    } catch (err) {
      const code = (err as { code?: string } | undefined)?.code;
      const missing = code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND';
      throw new Error(
        `${CONFIG_FIELD} needs the optional package ${RUNTIME_PACKAGE}, which ` +
          (missing ? 'is not installed' : `could not be loaded (${(err as Error)?.message ?? String(err)})`) +
          `. Install it with \`npm install ${RUNTIME_PACKAGE}\` (optional dependencies are skipped on unsupported platforms` +
          ` or with --omit=optional), or configure another embedder kind.`,
        { cause: err },
      );
    }
    const m = mod as Partial<OrtModule> & { default?: Partial<OrtModule> };
    const InferenceSession = m.InferenceSession ?? m.default?.InferenceSession;
    const Tensor = m.Tensor ?? m.default?.Tensor;
    if (!InferenceSession || !Tensor) throw new Error(`${CONFIG_FIELD}: ${RUNTIME_PACKAGE} does not export InferenceSession and Tensor`);
    return { InferenceSession, Tensor };
  };
  if (loader) return load();
  defaultRuntime ??= load().catch((err: unknown) => {
    defaultRuntime = undefined;
    throw err;
  });
  return defaultRuntime;
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

async function readJson(path: string, what: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new Error(`ONNX embedder: cannot read ${what} ${path}: ${(err as Error).message}`, { cause: err });
  }
  try {
    const value: unknown = JSON.parse(text);
    if (!value || typeof value !== 'object' || Array.isArray(value)) throw new Error('not a JSON object');
    return value as Record<string, unknown>;
  } catch (err) {
    throw new Error(`ONNX embedder: ${what} ${path} is not valid: ${(err as Error).message}`, { cause: err });
  }
}

function sha256File(path: string): Promise<string> {
  return new Promise((done, fail) => {
    const hash = createHash('sha256');
    createReadStream(path)
      .on('error', fail)
      .on('data', (chunk) => hash.update(chunk))
      .on('end', () => done(hash.digest('hex')));
  });
}

/** One tokenized text: ids and token types, special tokens included. */
interface Encoded {
  ids: number[];
  typeIds: number[];
}

type IdType = 'int64' | 'int32';

export class OnnxEmbedder implements Embedder {
  /** The model file loaded and the effective sequence length (for logs). */
  readonly modelPath: string;
  readonly maxSequenceLength: number;
  private readonly idPrefix: string;
  /** Set by the probe in `load()`; 0 only while probing. */
  private dims = 0;
  private closed = false;

  private constructor(
    private readonly ort: OrtModule,
    private readonly session: OrtSession,
    private readonly tokenizer: Tokenizer,
    private readonly inputs: { ids: IdType; mask: IdType | undefined; types: IdType | undefined },
    private readonly output: string,
    private readonly padId: number,
    private readonly batchSize: number,
    info: { dirName: string; modelHash: string; modelPath: string; maxSequenceLength: number },
  ) {
    this.modelPath = info.modelPath;
    this.maxSequenceLength = info.maxSequenceLength;
    this.idPrefix = `onnx:${info.dirName}:${info.modelHash.slice(0, 12)}`;
  }

  /** `onnx:<directory name>:<sha256 of model.onnx, 12 hex>:<dims>`. */
  get id(): string {
    return `${this.idPrefix}:${this.dims}`;
  }

  get dimensions(): number {
    return this.dims;
  }

  /**
   * Opens the model directory `dir` and probes it once (which sets `dimensions` and `id`).
   * Rejects with an Error naming the path when the directory, model.onnx or tokenizer.json is
   * missing or invalid, and naming the config field when onnxruntime-node is not installed.
   */
  static async load(dir: string, opts: OnnxEmbedderOptions = {}): Promise<OnnxEmbedder> {
    const root = resolve(dir);
    const maxLength = opts.maxSequenceLength ?? 256;
    const batchSize = opts.batchSize ?? 32;
    const threads = opts.threads ?? 1;
    for (const [name, value, min] of [
      ['maxSequenceLength', maxLength, 2],
      ['batchSize', batchSize, 1],
      ['threads', threads, 1],
    ] as const) {
      if (!Number.isInteger(value) || value < min) throw new Error(`ONNX embedder: ${name} must be an integer >= ${min}, got ${value}`);
    }

    const dirStat = await stat(root).catch(() => undefined);
    if (!dirStat) throw new Error(`ONNX embedder: model directory ${root} does not exist (${CONFIG_FIELD}: dir)`);
    if (!dirStat.isDirectory()) throw new Error(`ONNX embedder: ${root} is not a directory (${CONFIG_FIELD}: dir)`);
    const candidates = [join(root, 'model.onnx'), join(root, 'onnx', 'model.onnx')];
    let modelPath: string | undefined;
    for (const c of candidates) if (!modelPath && (await isFile(c))) modelPath = c;
    if (!modelPath) throw new Error(`ONNX embedder: no model in ${root}: expected ${candidates.join(' or ')}`);
    const tokenizerPath = join(root, 'tokenizer.json');
    if (!(await isFile(tokenizerPath))) {
      throw new Error(`ONNX embedder: no tokenizer in ${root}: expected ${tokenizerPath} (the Hugging Face tokenizer.json)`);
    }

    const tokenizerJson = await readJson(tokenizerPath, 'tokenizer');
    const tokenizerConfigPath = join(root, 'tokenizer_config.json');
    const tokenizerConfig = (await isFile(tokenizerConfigPath)) ? await readJson(tokenizerConfigPath, 'tokenizer config') : {};
    let tokenizer: Tokenizer;
    try {
      tokenizer = new Tokenizer(tokenizerJson, tokenizerConfig);
    } catch (err) {
      throw new Error(`ONNX embedder: cannot build the tokenizer from ${tokenizerPath}: ${(err as Error).message}`, { cause: err });
    }
    const configPath = join(root, 'config.json');
    const modelConfig = (await isFile(configPath)) ? await readJson(configPath, 'model config') : {};
    const maxPositions = modelConfig['max_position_embeddings'];
    const maxSequenceLength = typeof maxPositions === 'number' && maxPositions >= 2 ? Math.min(maxLength, maxPositions) : maxLength;

    const ort = await loadRuntime(opts.loadRuntime);
    const modelHash = await sha256File(modelPath);
    let session: OrtSession;
    try {
      session = await ort.InferenceSession.create(modelPath, {
        executionProviders: ['cpu'],
        intraOpNumThreads: threads,
        interOpNumThreads: 1,
        graphOptimizationLevel: 'all',
        logSeverityLevel: 3,
      });
    } catch (err) {
      throw new Error(`ONNX embedder: cannot load the model ${modelPath}: ${(err as Error).message}`, { cause: err });
    }

    try {
      const typeOf = (name: string): IdType => {
        const meta = session.inputMetadata?.find((m) => m.name === name);
        if (meta?.isTensor && meta.type !== undefined && meta.type !== 'int64' && meta.type !== 'int32') {
          throw new Error(`input '${name}' is ${meta.type}; expected int64 or int32`);
        }
        return meta?.type === 'int32' ? 'int32' : 'int64';
      };
      const known = new Set(['input_ids', 'attention_mask', 'token_type_ids']);
      const unknown = session.inputNames.filter((n) => !known.has(n));
      if (!session.inputNames.includes('input_ids')) throw new Error(`it has no input_ids input (inputs: ${session.inputNames.join(', ')})`);
      if (unknown.length) throw new Error(`unsupported inputs ${unknown.join(', ')} (this embedder feeds input_ids, attention_mask, token_type_ids)`);
      const inputs = {
        ids: typeOf('input_ids'),
        mask: session.inputNames.includes('attention_mask') ? typeOf('attention_mask') : undefined,
        types: session.inputNames.includes('token_type_ids') ? typeOf('token_type_ids') : undefined,
      };
      const output = ['sentence_embedding', 'last_hidden_state'].find((n) => session.outputNames.includes(n)) ?? session.outputNames[0];
      if (output === undefined) throw new Error('it has no outputs');

      const padding = tokenizerJson['padding'] as { pad_id?: unknown } | null | undefined;
      const padId =
        (typeof padding?.pad_id === 'number' ? padding.pad_id : undefined) ??
        tokenizer.token_to_id('[PAD]') ??
        tokenizer.token_to_id('<pad>') ??
        0;

      const embedder = new OnnxEmbedder(ort, session, tokenizer, inputs, output, padId, batchSize, {
        dirName: basename(root),
        modelHash,
        modelPath,
        maxSequenceLength,
      });
      const [vector] = await embedder.run([PROBE_TEXT]);
      embedder.dims = vector!.length;
      return embedder;
    } catch (err) {
      await session.release().catch(() => undefined);
      throw new Error(`ONNX embedder: the model ${modelPath} cannot be used: ${(err as Error).message}`, { cause: err });
    }
  }

  async embed(texts: string[], opts: { signal?: AbortSignal } = {}): Promise<EmbedResult> {
    if (this.closed) throw new Error(`ONNX embedder ${this.id} is closed`);
    const vectors: Float32Array[] = [];
    for (let start = 0; start < texts.length; start += this.batchSize) {
      // A session run cannot be interrupted: the signal is honoured between batches.
      if (opts.signal?.aborted) throw opts.signal.reason ?? new Error('embedding aborted');
      vectors.push(...(await this.run(texts.slice(start, start + this.batchSize))));
    }
    if (opts.signal?.aborted) throw opts.signal.reason ?? new Error('embedding aborted');
    return { vectors };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.session.release();
  }

  /** Tokens of one text, truncated to maxSequenceLength with its special tokens kept. */
  private encode(text: string): Encoded {
    const max = this.maxSequenceLength;
    const clipped = text.length > max * CHARS_PER_TOKEN_BOUND ? text.slice(0, max * CHARS_PER_TOKEN_BOUND) : text;
    const full = this.tokenizer.encode(clipped, { return_token_type_ids: true });
    const fullTypes = full.token_type_ids ?? new Array<number>(full.ids.length).fill(0);
    if (full.ids.length <= max) return { ids: full.ids, typeIds: fullTypes };
    // Too long: cut the text's own tokens, keep what the template adds around them.
    const plain = this.tokenizer.encode(clipped, { add_special_tokens: false }).ids;
    const at = findSlice(full.ids, plain);
    const extra = full.ids.length - plain.length;
    if (at === -1 || extra >= max) return { ids: full.ids.slice(0, max), typeIds: fullTypes.slice(0, max) };
    const keep = max - extra;
    const end = at + plain.length;
    return {
      ids: [...full.ids.slice(0, at + keep), ...full.ids.slice(end)],
      typeIds: [...fullTypes.slice(0, at + keep), ...fullTypes.slice(end)],
    };
  }

  /** One session run over `texts`: their unit vectors. */
  private async run(texts: string[]): Promise<Float32Array[]> {
    const encoded = texts.map((t) => this.encode(t)).map((e) => (e.ids.length ? e : { ids: [this.padId], typeIds: [0] }));
    const batch = encoded.length;
    const seq = Math.max(...encoded.map((e) => e.ids.length));
    const ids = new Array<number>(batch * seq).fill(this.padId);
    const mask = new Array<number>(batch * seq).fill(0);
    const types = new Array<number>(batch * seq).fill(0);
    encoded.forEach((e, b) => {
      for (let i = 0; i < e.ids.length; i++) {
        ids[b * seq + i] = e.ids[i]!;
        mask[b * seq + i] = 1;
        types[b * seq + i] = e.typeIds[i] ?? 0;
      }
    });
    const tensor = (type: IdType, values: number[]) =>
      new this.ort.Tensor(type, type === 'int64' ? BigInt64Array.from(values, (v) => BigInt(v)) : Int32Array.from(values), [batch, seq]);
    const feeds: Record<string, OrtTensor> = { input_ids: tensor(this.inputs.ids, ids) };
    if (this.inputs.mask) feeds['attention_mask'] = tensor(this.inputs.mask, mask);
    if (this.inputs.types) feeds['token_type_ids'] = tensor(this.inputs.types, types);

    const result = (await this.session.run(feeds, [this.output]))[this.output];
    if (!result) throw new Error(`the model gave no '${this.output}' output`);
    if (result.type !== 'float32' || !(result.data instanceof Float32Array)) {
      throw new Error(`output '${this.output}' is ${result.type}; only float32 is supported`);
    }
    const data = result.data;
    const dims = result.dims;
    const vectors: Float32Array[] = [];
    if (dims.length === 2 && dims[0] === batch) {
      const d = dims[1]!;
      for (let b = 0; b < batch; b++) vectors.push(normalize(data.slice(b * d, (b + 1) * d)));
    } else if (dims.length === 3 && dims[0] === batch && dims[1] === seq) {
      const d = dims[2]!;
      for (let b = 0; b < batch; b++) {
        const v = new Float32Array(d);
        let count = 0;
        for (let s = 0; s < seq; s++) {
          if (mask[b * seq + s] === 0) continue;
          count++;
          const off = (b * seq + s) * d;
          for (let k = 0; k < d; k++) v[k] = v[k]! + data[off + k]!;
        }
        for (let k = 0; k < d; k++) v[k] = v[k]! / count;
        vectors.push(normalize(v));
      }
    } else {
      throw new Error(`output '${this.output}' has shape [${dims.join(', ')}]; expected [${batch}, ${seq}, dims] or [${batch}, dims]`);
    }
    const d = vectors[0]!.length;
    if (this.dims !== 0 && d !== this.dims) throw new Error(`the model gave ${d} dimensions, not ${this.dims}`);
    return vectors;
  }
}

/** Where `needle` occurs in `hay` (first match), or -1. */
function findSlice(hay: number[], needle: number[]): number {
  outer: for (let at = 0; at + needle.length <= hay.length; at++) {
    for (let i = 0; i < needle.length; i++) if (hay[at + i] !== needle[i]) continue outer;
    return at;
  }
  return -1;
}

/** `v` scaled to unit length (in place); throws on an all-zero or non-finite vector. */
function normalize(v: Float32Array): Float32Array {
  let sum = 0;
  for (let i = 0; i < v.length; i++) sum += v[i]! * v[i]!;
  if (!Number.isFinite(sum) || sum === 0) throw new Error(`the model gave a ${sum === 0 ? 'zero' : 'non-finite'} embedding`);
  const inv = 1 / Math.sqrt(sum);
  for (let i = 0; i < v.length; i++) v[i] = v[i]! * inv;
  return v;
}
