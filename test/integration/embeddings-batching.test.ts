/**
 * Embeddings micro-batching through the gateway: concurrent single-input requests reach the
 * upstream as a few array requests; every client gets its own vector, and the ledger's tokens add
 * up to the upstream's reported usage exactly.
 */
import { describe, expect, it } from 'vitest';
import { auth, httpSimConfig, postJson, startGateway, startSim } from '../helpers/gateway.js';

describe('embeddings micro-batching', () => {
  it('100 concurrent single-input requests: a few upstream calls, every answer its own, usage exact', async () => {
    const sim = await startSim();
    const gw = await startGateway({
      ...httpSimConfig({ up: sim }, { emb: { type: 'embedding', deployments: [{ provider: 'up', model: 'sim-embed' }], price: { input: 0.02 } } }),
      // A wide window: the 100 requests' arrival spreads over hundreds of ms on a loaded machine.
      embeddings: { batching: { windowMs: 250, maxBatchSize: 64 } },
    });
    try {
      const texts = Array.from({ length: 100 }, (_, i) => `sentence number ${i} about ${'x'.repeat(i % 7)}`);
      const answers = await Promise.all(texts.map((input) => postJson(`${gw.url}/v1/embeddings`, { model: 'emb', input }, auth(gw.apiKey))));
      expect(answers.every((a) => a.status === 200)).toBe(true);
      const calls = sim.engine.stats().total;
      process.stdout.write(`[embeddings batching] 100 requests -> ${calls} upstream calls\n`);
      expect(calls).toBeGreaterThanOrEqual(2); // 100 inputs, at most 64 per batch
      expect(calls).toBeLessThanOrEqual(10); // the reduction at a realistic rate is measured in bench/
      // Each answer is the vector of its own text: the same text asked alone gives the same vector.
      const alone = await postJson(`${gw.url}/v1/embeddings`, { model: 'emb', input: texts[42] }, auth(gw.apiKey));
      expect(alone.body.data[0].embedding).toEqual(answers[42]!.body.data[0].embedding);
      for (const a of answers) expect(a.body.data).toHaveLength(1);
      await gw.gateway.ledger.flush();
      const events = await Promise.all(answers.map((a) => gw.gateway.storage.ledger.get(a.headers.get('x-request-id') as string)));
      const billed = events.reduce((n, e) => n + (e?.promptTokens ?? 0), 0);
      const reported = sim.engine.stats().reportedUsage.promptTokens - alone.body.usage.prompt_tokens;
      expect(billed).toBe(reported);
      const metrics = await (await fetch(`${gw.url}/metrics`)).text();
      expect(metrics).toMatch(/tollgate_embedding_batched_requests_total 10[01]/);
    } finally {
      await gw.close();
      await sim.close();
    }
  });
});
