/**
 * The configured embedders through the gateway: an embeddings deployment (its cost metered on
 * the request that caused it) and a local ONNX model directory (a tiny model built here).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildTinyOnnxModel } from '../fixtures/tiny-onnx.js';
import { auth, httpSimConfig, postJson, startGateway, startSim } from '../helpers/gateway.js';

const ask = (content: string) => ({ model: 'chat', temperature: 0, messages: [{ role: 'user', content }] });
const PICO = 1e12;

describe('semantic cache embedders', () => {
  it('an embeddings deployment: the question is embedded upstream and its cost billed to the request', async () => {
    const sim = await startSim();
    const gw = await startGateway(
      httpSimConfig(
        { up: sim },
        {
          chat: { deployments: [{ provider: 'up', model: 'sim-small' }], price: { input: 1, output: 2 } },
          emb: { type: 'embedding', deployments: [{ provider: 'up', model: 'sim-embed' }], price: { input: 100 } },
        },
        { cache: { semantic: { embedder: { kind: 'deployment', model: 'emb' }, threshold: 0.99 } } },
      ),
    );
    try {
      expect(gw.gateway.cache.semantic?.embedderId).toMatch(/^deployment:emb:\d+$/);
      const before = sim.engine.stats().byModel['sim-embed'] ?? 0; // the start-up probe
      const miss = await postJson(`${gw.url}/v1/chat/completions`, ask('Which embedder answered this?'), auth(gw.apiKey));
      expect(miss.headers.get('x-tollgate-cache')).toBe('miss');
      expect(sim.engine.stats().byModel['sim-embed']).toBe(before + 1);
      const chatCost = miss.body.usage.prompt_tokens * 1 + miss.body.usage.completion_tokens * 2; // micro-dollars
      const billed = Number(miss.headers.get('x-tollgate-cost-usd')) * 1e6;
      expect(billed).toBeGreaterThan(chatCost); // the embedding (at $100 per million tokens) is part of it
      await gw.settled(); // its usage event is in the Ledger
      await gw.gateway.cache.idle(); // and its answer in the cache
      const event = await gw.gateway.storage.ledger.get(miss.headers.get('x-request-id') as string);
      expect(event!.costPico).toBe(Math.round(billed * 1e6));
      const hit = await postJson(`${gw.url}/v1/chat/completions`, ask('Which embedder answered this?'), auth(gw.apiKey));
      expect(hit.headers.get('x-tollgate-cache')).toBe('hit');
      expect(Number(hit.headers.get('x-tollgate-cost-usd')) * PICO).toBe(0); // an exact hit needs no embedding
    } finally {
      await gw.close();
      await sim.close();
    }
  });

  it('a local ONNX model directory', async (t) => {
    try {
      await import('onnxruntime-node');
    } catch {
      if (process.env['CI'] === 'true') throw new Error('onnxruntime-node is not installed');
      process.stderr.write('\n[NOTICE] onnxruntime-node unavailable: skipping the ONNX cache test.\n\n');
      t.skip(); // an optional dependency that did not install: skipped with the notice above (never under CI)
    }
    const dir = mkdtempSync(join(tmpdir(), 'tg-onnx-'));
    await buildTinyOnnxModel(dir);
    const sim = await startSim();
    const gw = await startGateway(
      httpSimConfig({ up: sim }, { chat: { deployments: [{ provider: 'up', model: 'sim-small' }] } }, { cache: { semantic: { embedder: { kind: 'onnx', dir }, threshold: 0.999 } } }),
    );
    try {
      expect(gw.gateway.cache.semantic?.embedderId).toMatch(/^onnx:/);
      const miss = await postJson(`${gw.url}/v1/chat/completions`, ask('hello world'), auth(gw.apiKey));
      expect(miss.headers.get('x-tollgate-cache')).toBe('miss');
      await gw.gateway.cache.idle(); // the answer is stored, by meaning too
      // With the exact entry gone, the same question is found by meaning (the ONNX vectors).
      await gw.gateway.cache.exact.invalidate({});
      const semantic = await postJson(`${gw.url}/v1/chat/completions`, ask('hello world'), auth(gw.apiKey));
      expect(semantic.headers.get('x-tollgate-cache')).toBe('semantic');
      expect(sim.engine.stats().total).toBe(1);
    } finally {
      await gw.close();
      await sim.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
