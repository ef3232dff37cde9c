/**
 * The judge for borderline semantic candidates (cache.semantic.judge, src/cache/judge.ts), through
 * HTTP, embedded mode. The judge model runs on a simulator of its own whose scripted answers say
 * "Yes" to pairs about passwords and "No." to pairs about refunds, so its calls are counted apart
 * from the route's. Each route's threshold is set from the pair's cosine under the built-in
 * embedder (computed here), so the paraphrase falls where each test needs it: in the band, above
 * the threshold, or below the band.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { BuiltinEmbedder } from '../../src/cache/embedders/builtin.js';
import { CacheDecision } from '../../src/cache/decision.js';
import { costPico, formatUsd } from '../../src/metering/cost.js';
import type { SimServer } from '../../src/providers/simulated/server.js';
import { type TestGateway, auth, httpSimConfig, postJson, startGateway, startSim } from '../helpers/gateway.js';

const P1 = 'How do I reset my account password?';
const P2 = 'What steps should I follow to reset the password on my account?';
/** The same question as P2 once normalized (case, punctuation), but another exact key. */
const P2_AGAIN = 'what steps should i follow to reset the password on my account';
const R1 = 'How do I get a refund for my order?';
const R2 = 'What is the process to request a refund on an order?';
const S1 = 'How do I cancel my subscription plan?';
const S2 = 'What do I need to do to cancel the plan I subscribed to?';

const RESET = 'Use the "Forgot password" link on the sign-in page.';
const REFUND = 'Open the order and pick "Request a refund".';
const CANCEL = 'Go to Billing and pick "Cancel plan".';

const embedder = new BuiltinEmbedder();
function cosine(a: string, b: string): number {
  const x = embedder.embedOne(a);
  const y = embedder.embedOne(b);
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i]! * y[i]!;
  return s;
}
const round = (x: number) => Math.round(x * 1e4) / 1e4;

const JUDGE_PRICE = { input: 2, output: 4 };

async function startSims(): Promise<{ sim: SimServer; judgeSim: SimServer }> {
  const sim = await startSim();
  sim.engine.setAnswers([
    { match: /password/i, answer: RESET },
    { match: /refund/i, answer: REFUND },
    { match: /cancel/i, answer: CANCEL },
  ]);
  const judgeSim = await startSim();
  judgeSim.engine.setAnswers([
    { match: /password/i, answer: 'Yes' },
    { match: /refund/i, answer: 'No.' },
  ]);
  return { sim, judgeSim };
}

const route = (semantic: Record<string, unknown>) => ({ deployments: [{ provider: 'up', model: 'sim-small' }], price: { input: 0.15, output: 0.6 }, cache: { semantic } });
const judgeModel = { deployments: [{ provider: 'judge', model: 'sim-small' }], price: JUDGE_PRICE };

describe('the judge for borderline semantic candidates (similarity mode)', () => {
  let sim: SimServer;
  let judgeSim: SimServer;
  let gw: TestGateway;
  const cosP = cosine(P1, P2);
  const cosR = cosine(R1, R2);
  const cosS = cosine(S1, S2);

  beforeAll(async () => {
    ({ sim, judgeSim } = await startSims());
    gw = await startGateway(
      httpSimConfig(
        { up: sim, judge: judgeSim },
        {
          judge: judgeModel,
          yes: route({ threshold: round(cosP + 0.03) }),
          no: route({ threshold: round(cosR + 0.03) }),
          hang: route({ threshold: round(cosS + 0.03), judge: { model: 'judge', timeoutMs: 50 } }),
          above: route({ threshold: round(cosP - 0.03) }),
          below: route({ threshold: round(cosP + 0.08), judge: { model: 'judge', band: 0.05 } }), // band: [cos + 0.03, cos + 0.08)
          off: route({ threshold: round(cosP + 0.03), judge: false }),
        },
        { cache: { semantic: { decision: 'similarity', judge: { model: 'judge', band: 0.1 } } }, resilience: { retry: { maxRetries: 0, baseDelayMs: 1, maxDelayMs: 2 } } },
      ),
    );
  });
  afterAll(async () => {
    await gw?.close();
    await sim?.close();
    await judgeSim?.close();
  });

  const ask = (model: string, content: string) =>
    postJson(`${gw.url}/v1/chat/completions`, { model, temperature: 0, messages: [{ role: 'user', content }] }, auth(gw.apiKey));
  const content = (res: { body: any }) => res.body.choices[0].message.content as string;
  const judgeCalls = () => judgeSim.engine.stats().total;
  const settle = async () => {
    await gw.settled();
    await gw.gateway.cache.idle();
  };
  const judgeStats = async (name: string) => {
    const res = await fetch(`${gw.url}/admin/v1/cache`, { headers: auth(gw.adminKey) });
    return ((await res.json()) as any).judge.find((r: any) => r.route === name);
  };

  it('the pairs fall where the tests need them', () => {
    expect(cosP).toBeGreaterThan(0.5);
    expect(cosP).toBeLessThan(0.92);
    expect(cosR).toBeLessThan(0.95);
    expect(cosS).toBeLessThan(0.95);
  });

  it('a borderline candidate judged "yes" is served from the cache; the judge call is billed with the request', async () => {
    const first = await ask('yes', P1);
    expect(first.headers.get('x-tollgate-cache')).toBe('miss');
    await settle();
    const upstream = sim.engine.stats().total;
    const usageBefore = judgeSim.engine.stats().reportedUsage;
    const res = await ask('yes', P2);
    expect(res.status).toBe(200);
    expect(res.headers.get('x-tollgate-cache')).toBe('semantic');
    expect(res.headers.get('x-tollgate-cache-judge')).toBe('yes');
    expect(content(res)).toBe(RESET);
    expect(sim.engine.stats().total).toBe(upstream); // no upstream call
    // The judge was asked once, with the fixed prompt, at temperature 0 and a few tokens.
    const usage = judgeSim.engine.stats().reportedUsage;
    expect(usage.answers - usageBefore.answers).toBe(1);
    const sent = judgeSim.engine.stats().recentRequests.at(-1) as any;
    expect(sent).toMatchObject({ temperature: 0, max_tokens: 3 });
    expect(sent.messages[0].content).toContain(P1);
    expect(sent.messages[0].content).toContain(P2);
    expect(sent.messages[0].content).toContain('Do these two questions need the same answer? Reply yes or no.');
    // A cache hit costs its judge call (the builtin embedder is free).
    const expected = costPico({ prompt_tokens: usage.promptTokens - usageBefore.promptTokens, completion_tokens: usage.completionTokens - usageBefore.completionTokens }, JUDGE_PRICE);
    expect(expected).toBeGreaterThan(0);
    expect(res.headers.get('x-tollgate-cost-usd')).toBe(formatUsd(expected));
    await settle();
    expect(await judgeStats('yes')).toMatchObject({ model: 'judge', calls: { yes: 1, no: 0, error: 0, timeout: 0 }, cost_usd: formatUsd(expected) });
  });

  it('the same borderline pair again uses the remembered verdict: no second judge call, nothing billed for it', async () => {
    const calls = judgeCalls();
    const res = await ask('yes', P2_AGAIN); // another exact key, the same pair once normalized
    expect(res.headers.get('x-tollgate-cache')).toBe('semantic');
    expect(res.headers.get('x-tollgate-cache-judge')).toBe('yes; cached');
    expect(content(res)).toBe(RESET);
    expect(judgeCalls()).toBe(calls);
    expect(res.headers.get('x-tollgate-cost-usd')).toBe('0');
    expect(await judgeStats('yes')).toMatchObject({ calls: { yes: 1 }, cached_verdicts: { yes: 1, no: 0 } });
  });

  it('a borderline candidate judged "no" is a miss: the upstream answer is served', async () => {
    await ask('no', R1);
    await settle();
    const upstream = sim.engine.stats().total;
    const calls = judgeCalls();
    const res = await ask('no', R2);
    expect(res.headers.get('x-tollgate-cache')).toBe('miss');
    expect(res.headers.get('x-tollgate-cache-judge')).toBe('no');
    expect(content(res)).toBe(REFUND);
    expect(sim.engine.stats().total).toBe(upstream + 1);
    expect(judgeCalls()).toBe(calls + 1);
    await settle();
    expect(await judgeStats('no')).toMatchObject({ calls: { yes: 0, no: 1, error: 0, timeout: 0 } });
  });

  it('a judge that hangs: after its timeout the request is answered as a miss', async () => {
    await ask('hang', S1);
    await settle();
    judgeSim.engine.script([{ kind: 'hang' }]); // the next judge call never answers
    const upstream = sim.engine.stats().total;
    const res = await ask('hang', S2);
    expect(res.status).toBe(200);
    expect(res.headers.get('x-tollgate-cache')).toBe('miss');
    expect(res.headers.get('x-tollgate-cache-judge')).toBe('timeout');
    expect(content(res)).toBe(CANCEL);
    expect(sim.engine.stats().total).toBe(upstream + 1);
    await settle();
    expect(await judgeStats('hang')).toMatchObject({ calls: { yes: 0, no: 0, error: 0, timeout: 1 }, cost_usd: '0' });
    // The judge's hung call was abandoned (aborted), not left open.
    await vi.waitFor(() => expect(judgeSim.engine.stats().inFlight).toBe(0), { timeout: 10_000, interval: 5 });
  });

  it('a candidate above the threshold never calls the judge; one below the band does not either', async () => {
    await ask('above', P1);
    await ask('below', P1);
    await ask('off', P1);
    await settle();
    const calls = judgeCalls();
    const above = await ask('above', P2);
    expect(above.headers.get('x-tollgate-cache')).toBe('semantic');
    expect(above.headers.get('x-tollgate-cache-judge')).toBeNull();
    const below = await ask('below', P2);
    expect(below.headers.get('x-tollgate-cache')).toBe('miss');
    expect(below.headers.get('x-tollgate-cache-judge')).toBeNull();
    const off = await ask('off', P2); // judge: false on this route
    expect(off.headers.get('x-tollgate-cache')).toBe('miss');
    expect(off.headers.get('x-tollgate-cache-judge')).toBeNull();
    expect(judgeCalls()).toBe(calls);
  });

  it('exports the counts in /metrics', async () => {
    const text = await (await fetch(`${gw.url}/metrics`)).text();
    expect(text).toContain('tollgate_cache_judge_calls_total{route="yes",verdict="yes"} 1');
    expect(text).toContain('tollgate_cache_judge_calls_total{route="no",verdict="no"} 1');
    expect(text).toContain('tollgate_cache_judge_calls_total{route="hang",verdict="timeout"} 1');
    expect(text).toContain('tollgate_cache_judge_cached_verdicts_total{route="yes",verdict="yes"} 1');
    expect(text).not.toContain('tollgate_cache_judge_calls_total{route="off"');
  });

  it('refuses a judge model that is not a chat model of the catalog, naming the field', async () => {
    await expect(
      startGateway(httpSimConfig({ up: sim }, { m: route({ judge: { model: 'nope' } }) })),
    ).rejects.toThrow(/cache\.semantic\.judge\.model.*unknown model 'nope'/);
    await expect(
      startGateway(httpSimConfig({ up: sim }, { m: route({ judge: { model: 'm', band: 0 } }) })),
    ).rejects.toThrow(/band/);
  });
});

describe('the judge in model mode (the band is on the decision score)', () => {
  let sim: SimServer;
  let judgeSim: SimServer;
  let gw: TestGateway;
  const score = new CacheDecision().decide(P2, P1).score;

  beforeAll(async () => {
    ({ sim, judgeSim } = await startSims());
    gw = await startGateway(
      httpSimConfig(
        { up: sim, judge: judgeSim },
        { judge: judgeModel, yes: route({ threshold: round(score + 0.03), judge: { model: 'judge', band: 0.1 } }), below: route({ threshold: round(score + 0.15), judge: { model: 'judge', band: 0.1 } }) },
      ),
    );
  });
  afterAll(async () => {
    await gw?.close();
    await sim?.close();
    await judgeSim?.close();
  });
  const ask = (model: string, content: string) =>
    postJson(`${gw.url}/v1/chat/completions`, { model, temperature: 0, messages: [{ role: 'user', content }] }, auth(gw.apiKey));

  it('a candidate scored within the band is put to the judge; one scored below it is not', async () => {
    expect(score).toBeGreaterThan(0.2);
    expect(score).toBeLessThan(0.9);
    await ask('yes', P1);
    await ask('below', P1);
    await gw.settled();
    await gw.gateway.cache.idle();
    const judged = await ask('yes', P2);
    expect(judged.headers.get('x-tollgate-cache')).toBe('semantic');
    expect(judged.headers.get('x-tollgate-cache-judge')).toBe('yes');
    const calls = judgeSim.engine.stats().total;
    expect(calls).toBe(1);
    const below = await ask('below', P2);
    expect(below.headers.get('x-tollgate-cache')).toBe('miss');
    expect(below.headers.get('x-tollgate-cache-judge')).toBeNull();
    expect(judgeSim.engine.stats().total).toBe(calls);
  });
});
