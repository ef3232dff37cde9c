/**
 * Fair shares of the cache (issue 14, item 9): one tenant sending more unique cacheable requests
 * than the whole cache holds evicts its own entries, never another tenant's. Embedded mode: the
 * exact answers in the in-memory LRU, the semantic entries in the in-process index and SQLite.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SimServer } from '../../src/providers/simulated/server.js';
import { type TestGateway, auth, httpSimConfig, postJson, startGateway, startSim } from '../helpers/gateway.js';

const ask = (content: string) => ({ model: 'chat', temperature: 0, messages: [{ role: 'user', content }] });

/** Small global bounds, so the flood is short; each tenant's share is the default (a quarter). */
const EXACT_MAX = 80;
const SEMANTIC_MAX = 80;
const FLOOD = 100; // more unique cacheable requests than either bound

describe('cache fair shares (embedded)', () => {
  let sim: SimServer;
  let gw: TestGateway;
  let chat: string;

  beforeAll(async () => {
    sim = await startSim();
    gw = await startGateway(
      httpSimConfig(
        { up: sim },
        { chat: { deployments: [{ provider: 'up', model: 'sim-small' }], price: { input: 0.15, output: 0.6 } } },
        { cache: { exact: { maxEntries: EXACT_MAX }, semantic: { maxEntries: SEMANTIC_MAX } } },
      ),
    );
    chat = `${gw.url}/v1/chat/completions`;
  });
  afterAll(async () => {
    await gw?.close();
    await sim?.close();
  });

  const admin = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${gw.url}/admin/v1${path}`, {
      method,
      headers: { ...auth(gw.adminKey), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return (await res.json()) as any;
  };
  const newTenantKey = async (): Promise<string> => {
    const t = await admin('POST', '/tenants', { name: `flooder-${Math.random().toString(36).slice(2)}` });
    const k = await admin('POST', '/keys', { tenant_id: t.id, name: 'k' });
    return (k.secret ?? k.key) as string;
  };
  /** Every answer so far is stored (stores run in the background, after the response). */
  const stored = async () => {
    await gw.settled();
    await gw.gateway.cache.idle();
  };
  const outcome = async (content: string, key: string) => (await postJson(chat, ask(content), auth(key))).headers.get('x-tollgate-cache');

  it("a tenant flooding the cache with more unique requests than it holds evicts its own entries, not another tenant's", async () => {
    const questions = [
      'What is the boiling point of water at sea level?',
      'Which planet is known as the red planet?',
      'Who wrote the novel Moby Dick?',
      'How can I reset my account password?',
    ];
    for (const q of questions) expect(await outcome(q, gw.apiKey)).toBe('miss');
    await stored();

    const flooder = await newTenantKey();
    for (let i = 0; i < FLOOD; i++) {
      // Cheap and unique: each differs by a number, so none answers another (the guard compares numbers).
      expect(await outcome(`Give me catalogue fact number ${i + 1} of the spring collection.`, flooder)).toBe('miss');
    }
    await stored();

    const calls = sim.engine.stats().total;
    // A's semantic entry survived: a paraphrase is answered by meaning; and every exact answer is a hit.
    const after = [await outcome('How do I reset my account password?', gw.apiKey)];
    for (const q of questions) after.push(await outcome(q, gw.apiKey));
    expect(after).toEqual(['semantic', 'hit', 'hit', 'hit', 'hit']);
    expect(sim.engine.stats().total).toBe(calls); // all answered without upstream

    // The flooder was held to its share: its first answers made room for its later ones.
    expect(await outcome('Give me catalogue fact number 1 of the spring collection.', flooder)).toBe('miss');
    expect(await outcome(`Give me catalogue fact number ${FLOOD} of the spring collection.`, flooder)).toBe('hit');
    expect(gw.gateway.cache.semantic!.size).toBeLessThanOrEqual(SEMANTIC_MAX);
  });
});
