/**
 * Embeddings micro-batching through the gateway: concurrent single-input requests reach the
 * upstream as a few array requests; every client gets its own vector, and the ledger's tokens add
 * up to the upstream's reported usage exactly.
 *
 * The batches' windows are ended by the test (an injected timer), never by the clock: a batch
 * leaves when it is full, or when the test ends its window. (How much batching saves at a
 * realistic arrival rate, through real windows, is measured by `npm run bench -- jobs`.)
 */
import { describe, expect, it, vi } from 'vitest';
import { auth, httpSimConfig, postJson, startGateway, startSim } from '../helpers/gateway.js';

/** A batch timer the test fires by hand: `open` are the windows not yet ended nor cleared. */
function manualTimer() {
  const open = new Map<number, () => void>();
  let next = 0;
  return {
    open,
    set: (fire: () => void) => {
      open.set(++next, fire);
      return next;
    },
    clear: (handle: unknown) => void open.delete(handle as number),
    /** Ends every open window (each batch waiting in one leaves). */
    fireAll() {
      const fires = [...open.values()];
      open.clear();
      for (const fire of fires) fire();
    },
  };
}

describe('embeddings micro-batching', () => {
  it('100 concurrent single-input requests: a few upstream calls, every answer its own, usage exact', async () => {
    const sim = await startSim();
    const timer = manualTimer();
    const gw = await startGateway(
      {
        ...httpSimConfig({ up: sim }, { emb: { type: 'embedding', deployments: [{ provider: 'up', model: 'sim-embed' }], price: { input: 0.02 } } }),
        embeddings: { batching: { windowMs: 1_000, maxBatchSize: 50 } },
      },
      { embedBatchTimer: timer },
    );
    try {
      const texts = Array.from({ length: 100 }, (_, i) => `sentence number ${i} about ${'x'.repeat(i % 7)}`);
      // No window ever ends here: the batches leave because they are full, 50 and 50.
      const answers = await Promise.all(texts.map((input) => postJson(`${gw.url}/v1/embeddings`, { model: 'emb', input }, auth(gw.apiKey))));
      expect(answers.map((a) => a.status)).toEqual(Array(100).fill(200));
      expect(sim.engine.stats().total).toBe(2);
      const upstreamInputs = (sim.engine.stats().recentRequests as Array<{ input: string[] }>).map((r) => r.input);
      expect(upstreamInputs.map((i) => i.length)).toEqual([50, 50]);
      expect(upstreamInputs.flat().sort()).toEqual([...texts].sort());
      expect(timer.open.size).toBe(0); // both windows cleared when their batch left
      // Each answer is the vector of its own text: the same text asked alone gives the same vector.
      const aloneReq = postJson(`${gw.url}/v1/embeddings`, { model: 'emb', input: texts[42] }, auth(gw.apiKey));
      await vi.waitFor(() => expect(timer.open.size).toBe(1), { timeout: 10_000, interval: 5 }); // waiting in its window
      expect(sim.engine.stats().total).toBe(2);
      timer.fireAll(); // its window ends: it leaves alone
      const alone = await aloneReq;
      expect(sim.engine.stats().total).toBe(3);
      expect(alone.body.data[0].embedding).toEqual(answers[42]!.body.data[0].embedding);
      for (const a of answers) expect(a.body.data).toHaveLength(1);
      await gw.settled();
      const events = await Promise.all(answers.map((a) => gw.gateway.storage.ledger.get(a.headers.get('x-request-id') as string)));
      const billed = events.reduce((n, e) => n + (e?.promptTokens ?? 0), 0);
      const reported = sim.engine.stats().reportedUsage.promptTokens - alone.body.usage.prompt_tokens;
      expect(billed).toBe(reported);
      const metrics = await (await fetch(`${gw.url}/metrics`)).text();
      expect(metrics).toMatch(/tollgate_embedding_batched_requests_total 101\n/);
    } finally {
      await gw.close();
      await sim.close();
    }
  });
});
