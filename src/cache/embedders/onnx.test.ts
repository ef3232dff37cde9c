/**
 * OnnxEmbedder on a tiny model directory built by test/fixtures/tiny-onnx.ts (no download): the
 * real loading path (files on disk, onnxruntime-node, tokenizer.json). When onnxruntime-node
 * cannot be imported the suite is skipped with a visible notice, except under CI=true, where it
 * fails (CI must prove the embedder runs).
 */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { dot, norm } from '../../util/vector.js';
import { OnnxEmbedder } from './onnx.js';

/*
 * The fixture builder lives under test/, outside tsconfig's rootDir (src): imported through a
 * variable specifier so the type-check of src does not pull it in (TS6059). Its signature:
 */
type BuildTinyOnnxModel = (
  dir: string,
  opts?: { dims?: number; seed?: number; tokenTypeIds?: boolean; pooled?: boolean; inOnnxSubdir?: boolean; config?: boolean; maxPositionEmbeddings?: number },
) => Promise<{ dir: string; modelPath: string; dims: number; vocab: string[] }>;
const FIXTURE: string = '../../../test/fixtures/tiny-onnx.ts';
const { buildTinyOnnxModel } = (await import(FIXTURE)) as { buildTinyOnnxModel: BuildTinyOnnxModel };

async function runtimeAvailable(): Promise<boolean> {
  try {
    const specifier: string = 'onnxruntime-node';
    await import(specifier);
    return true;
  } catch (err) {
    const reason = (err as Error).message.split('\n')[0];
    if (process.env['CI'] === 'true') throw new Error(`onnxruntime-node unavailable (${reason}): the ONNX embedder's tests must run on CI`);
    process.stderr.write(`\n[NOTICE] onnxruntime-node unavailable: skipping the ONNX embedder's tests (${reason}).\n\n`);
    return false;
  }
}

const available = await runtimeAvailable();

const expectSameVector = (a: Float32Array, b: Float32Array) => {
  expect(a.length).toBe(b.length);
  for (let i = 0; i < a.length; i++) expect(a[i]).toBeCloseTo(b[i]!, 6);
};

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'tollgate-onnx-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe.skipIf(!available)('OnnxEmbedder on a tiny model', () => {
  let dir: string;
  let embedder: OnnxEmbedder;

  beforeAll(async () => {
    dir = join(root, 'tiny-minilm');
    await buildTinyOnnxModel(dir);
    embedder = await OnnxEmbedder.load(dir);
  });
  afterAll(async () => {
    await embedder?.close();
  });

  it('loads the directory: dimensions from the model, id from its name and the model hash', async () => {
    const hash = createHash('sha256')
      .update(await readFile(join(dir, 'model.onnx')))
      .digest('hex');
    expect(embedder.dimensions).toBe(16);
    expect(embedder.id).toBe(`onnx:tiny-minilm:${hash.slice(0, 12)}:16`);
    expect(embedder.modelPath).toBe(join(dir, 'model.onnx'));
    expect(embedder.maxSequenceLength).toBe(256);
  });

  it('gives unit vectors of the model dims, the same for the same text, different for different texts', async () => {
    const texts = ['What is the Weather in PARIS today?', 'How do I reset my password?', 'what is the weather in paris today?', ''];
    const { vectors, cost } = await embedder.embed(texts);
    expect(cost).toBeUndefined();
    expect(vectors).toHaveLength(4);
    for (const v of vectors) {
      expect(v).toBeInstanceOf(Float32Array);
      expect(v).toHaveLength(16);
      expect(norm(v)).toBeCloseTo(1, 5);
    }
    // Lowercasing tokenizer: same tokens, same vector.
    expectSameVector(vectors[0]!, vectors[2]!);
    expect(dot(vectors[0]!, vectors[1]!)).toBeLessThan(0.99);
    const again = await embedder.embed([texts[1]!]);
    expectSameVector(again.vectors[0]!, vectors[1]!);
    expect((await embedder.embed([])).vectors).toEqual([]);
  });

  it('is deterministic across loads of the same directory', async () => {
    const other = await OnnxEmbedder.load(dir);
    try {
      expect(other.id).toBe(embedder.id);
      const text = 'Tell me about the capital city of Germany';
      expectSameVector((await other.embed([text])).vectors[0]!, (await embedder.embed([text])).vectors[0]!);
    } finally {
      await other.close();
    }
  });

  it('batching gives the same vectors as one by one (padding is masked out)', async () => {
    const texts = ['hi', 'what is the price in dollar of one token of this model', 'refund my order please', 'zebra quokka'];
    const batched = await embedder.embed(texts);
    for (let i = 0; i < texts.length; i++) {
      expectSameVector(batched.vectors[i]!, (await embedder.embed([texts[i]!])).vectors[0]!);
    }
    const small = await OnnxEmbedder.load(dir, { batchSize: 3 });
    try {
      const split = await small.embed(texts);
      texts.forEach((_, i) => expectSameVector(split.vectors[i]!, batched.vectors[i]!));
    } finally {
      await small.close();
    }
  });

  it('truncates long inputs to maxSequenceLength tokens, keeping [CLS] and [SEP]', async () => {
    const short = await OnnxEmbedder.load(dir, { maxSequenceLength: 8 });
    try {
      // [CLS] + 6 words + [SEP] = 8 tokens.
      const head = 'the weather in paris is sunny';
      const [truncated, exact] = (await short.embed([`${head} today and tomorrow with rain`, head])).vectors;
      expectSameVector(truncated!, exact!);
      const [full] = (await embedder.embed([`${head} today and tomorrow with rain`])).vectors;
      expect(dot(full!, exact!)).toBeLessThan(0.9999);
      // Huge inputs neither crash nor are tokenized whole: the text is clipped first (at 64
      // characters per token allowed), so the work stays bounded whatever the input's size.
      const huge = 'gateway cache vector token '.repeat(50_000);
      const tokenizer = (embedder as unknown as { tokenizer: { encode: (text: string, opts?: unknown) => unknown } }).tokenizer;
      const encode = vi.spyOn(tokenizer, 'encode');
      try {
        const { vectors } = await embedder.embed([huge, 'x']);
        expect(norm(vectors[0]!)).toBeCloseTo(1, 5);
        const seen = encode.mock.calls.map(([text]) => text);
        expect(seen.some((text) => text.length > 1_000 && huge.startsWith(text))).toBe(true); // a head of the huge text
        const longest = Math.max(...seen.map((text) => text.length));
        expect(longest).toBeLessThanOrEqual(embedder.maxSequenceLength * 64);
        expect(longest).toBeLessThan(huge.length / 10);
      } finally {
        encode.mockRestore();
      }
    } finally {
      await short.close();
    }
  });

  it("caps the sequence length at config.json's max_position_embeddings", async () => {
    const capped = join(root, 'capped');
    await buildTinyOnnxModel(capped, { maxPositionEmbeddings: 16 });
    const e = await OnnxEmbedder.load(capped, { maxSequenceLength: 256 });
    try {
      expect(e.maxSequenceLength).toBe(16);
      expect(norm((await e.embed(['word '.repeat(100)])).vectors[0]!)).toBeCloseTo(1, 5);
    } finally {
      await e.close();
    }
  });

  it('reads onnx/model.onnx, feeds token_type_ids when declared, and uses a pooled sentence_embedding output', async () => {
    const nested = join(root, 'nested');
    await buildTinyOnnxModel(nested, { inOnnxSubdir: true, tokenTypeIds: true, config: false, seed: 7 });
    const typed = await OnnxEmbedder.load(nested);
    try {
      expect(typed.modelPath).toBe(join(nested, 'onnx', 'model.onnx'));
      expect(typed.id).toMatch(/^onnx:nested:[0-9a-f]{12}:16$/);
      expect(norm((await typed.embed(['hello world'])).vectors[0]!)).toBeCloseTo(1, 5);
    } finally {
      await typed.close();
    }
    // The same tables with a pooled output: the model's own mean pooling matches ours.
    const pooledDir = join(root, 'pooled');
    await buildTinyOnnxModel(pooledDir, { pooled: true });
    const pooled = await OnnxEmbedder.load(pooledDir);
    try {
      expect(pooled.id).not.toBe(embedder.id);
      const texts = ['how do i reset my password', 'a', 'weather'];
      const ours = await embedder.embed(texts);
      const theirs = await pooled.embed(texts);
      texts.forEach((_, i) => expectSameVector(theirs.vectors[i]!, ours.vectors[i]!));
    } finally {
      await pooled.close();
    }
  });

  it('honours an aborted signal and refuses calls once closed', async () => {
    const e = await OnnxEmbedder.load(dir);
    const controller = new AbortController();
    controller.abort(new Error('client went away'));
    await expect(e.embed(['x'], { signal: controller.signal })).rejects.toThrow('client went away');
    await e.close();
    await e.close();
    await expect(e.embed(['x'])).rejects.toThrow(/closed/);
  });

  it('rejects an invalid model file and an invalid tokenizer.json, naming the file', async () => {
    const badModel = join(root, 'bad-model');
    await buildTinyOnnxModel(badModel);
    await writeFile(join(badModel, 'model.onnx'), 'not a model');
    await expect(OnnxEmbedder.load(badModel)).rejects.toThrow(`cannot load the model ${join(badModel, 'model.onnx')}`);

    const badTokenizer = join(root, 'bad-tokenizer');
    await buildTinyOnnxModel(badTokenizer);
    await writeFile(join(badTokenizer, 'tokenizer.json'), '{ nope');
    await expect(OnnxEmbedder.load(badTokenizer)).rejects.toThrow(`tokenizer ${join(badTokenizer, 'tokenizer.json')} is not valid`);
  });
});

describe('OnnxEmbedder: missing files and runtime', () => {
  it('names the missing directory', async () => {
    const missing = join(root, 'does-not-exist');
    await expect(OnnxEmbedder.load(missing)).rejects.toThrow(`model directory ${missing} does not exist`);
    const file = join(root, 'a-file');
    await writeFile(file, 'x');
    await expect(OnnxEmbedder.load(file)).rejects.toThrow(`${file} is not a directory`);
  });

  it('names the missing model.onnx and tokenizer.json', async () => {
    const noModel = join(root, 'no-model');
    await mkdir(noModel, { recursive: true });
    await writeFile(join(noModel, 'tokenizer.json'), '{}');
    await expect(OnnxEmbedder.load(noModel)).rejects.toThrow(
      `no model in ${noModel}: expected ${join(noModel, 'model.onnx')} or ${join(noModel, 'onnx', 'model.onnx')}`,
    );

    const noTokenizer = join(root, 'no-tokenizer');
    await buildTinyOnnxModel(noTokenizer);
    await rm(join(noTokenizer, 'tokenizer.json'));
    await expect(OnnxEmbedder.load(noTokenizer)).rejects.toThrow(`no tokenizer in ${noTokenizer}: expected ${join(noTokenizer, 'tokenizer.json')}`);
  });

  it('without onnxruntime-node, names the config field and how to install it', async () => {
    const dir = join(root, 'no-runtime');
    await buildTinyOnnxModel(dir);
    const notFound = Object.assign(new Error("Cannot find package 'onnxruntime-node'"), { code: 'ERR_MODULE_NOT_FOUND' });
    const err = await OnnxEmbedder.load(dir, { loadRuntime: () => Promise.reject(notFound) }).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(err?.message).toMatch(/cache\.semantic\.embedder \(kind: onnx\) needs the optional package onnxruntime-node, which is not installed/);
    expect(err?.message).toContain('npm install onnxruntime-node');
    expect(basename(dir)).toBe('no-runtime');
  });
});
