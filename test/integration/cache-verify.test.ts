/**
 * Verified semantic caching with a user-set error bound (src/cache/verify.ts), through HTTP,
 * embedded mode. The simulator answers by class of question (scripted answers: every paraphrase of
 * a question gets one answer, a near-miss question another), so comparing a fresh answer with a
 * cached one means something. The serve-or-verify draws come from an injected random source:
 * `draw = 0.5` verifies a candidate exactly when its serving probability is below 1/2, i.e. when
 * its entry's error bound is above 2·maxErrorRate; `0.99` always verifies.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SimServer } from '../../src/providers/simulated/server.js';
import { type TestGateway, auth, httpSimConfig, postJson, postStream, startGateway, startSim } from '../helpers/gateway.js';

const RESET = 'Use the "Forgot password" link on the sign-in page and follow the e-mail we send you.';
const CHANGE = 'Go to Profile, pick Security, enter the old password once and the new one twice.';
const CAPITAL = 'Paris is the capital of France.';

const PREFIXES = ['', 'Please tell me: ', 'Quick question, ', 'I wonder, ', 'Hey, ', 'Tell me, ', 'Honestly, ', 'So, '];
const SUFFIXES = ['', ' Thanks!', ' Briefly please.', ' I am curious.', ' Just wondering.', ' Asking for a friend.', ' Cheers.', ' In short?'];
/** Paraphrases of a question: every prefix x suffix x base wording, in a fixed order. */
function variants(bases: string[]): string[] {
  const out: string[] = [];
  for (const s of SUFFIXES) for (const p of PREFIXES) for (const b of bases) out.push(`${p}${b}${s}`);
  return out;
}
const RESETS = variants(['how do I reset my account password?', 'how can I reset my account password?']);
const CHANGES = variants(['how do I change my account password?', 'how can I change my account password?']);
const CAPITALS = variants(['what is the capital city of France?']);

/** A deterministic PRNG (mulberry32). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('verified semantic caching (maxErrorRate)', () => {
  let sim: SimServer;
  let gw: TestGateway;
  let chat: string;
  /** What the serve-or-verify draw returns (a function of the test's choosing). */
  let random: () => number = () => 0.5;

  beforeAll(async () => {
    sim = await startSim();
    sim.engine.setAnswers([
      { match: /\breset\b/i, answer: RESET },
      { match: /\bchange\b/i, answer: CHANGE },
      { match: /capital/i, answer: CAPITAL },
    ]);
    const route = (cache: Record<string, unknown>) => ({ deployments: [{ provider: 'up', model: 'sim-small' }], price: { input: 0.15, output: 0.6 }, cache });
    gw = await startGateway(
      httpSimConfig(
        { up: sim },
        {
          verified: route({ semantic: { threshold: 0.5, maxErrorRate: 0.05 } }),
          run: route({ semantic: { threshold: 0.5, maxErrorRate: 0.05 } }),
          runplain: route({ semantic: { threshold: 0.5 } }),
          plain: route({ semantic: { threshold: 0.5 } }),
        },
        { cache: { semantic: { decision: 'similarity' } }, resilience: { retry: { maxRetries: 0, baseDelayMs: 1, maxDelayMs: 2 } } },
      ),
      { random: () => random() },
    );
    chat = `${gw.url}/v1/chat/completions`;
  });
  afterAll(async () => {
    await gw.close();
    await sim.close();
  });

  const ask = (model: string, content: string) => postJson(chat, { model, temperature: 0, messages: [{ role: 'user', content }] }, auth(gw.apiKey));
  const content = (res: { body: any }) => res.body.choices[0].message.content as string;
  const calls = () => sim.engine.stats().total;
  /** Verifications are compared once the answer is complete, in the background: wait for them. */
  const settle = async () => {
    await gw.settled();
    await gw.gateway.cache.idle();
  };
  const stats = async (route: string) => {
    const res = await fetch(`${gw.url}/admin/v1/cache`, { headers: auth(gw.adminKey) });
    const body = (await res.json()) as any;
    return body.verification.find((r: any) => r.route === route);
  };

  it('a route without maxErrorRate serves candidates unverified (today)', async () => {
    random = () => 0.99;
    await ask('plain', RESETS[0]!);
    const res = await ask('plain', RESETS[1]!);
    expect(res.headers.get('x-tollgate-cache')).toBe('semantic');
    expect(await stats('plain')).toBeUndefined();
  });

  it('verifies the first candidates (fresh answer served), then serves the entry once agreements bound its error', async () => {
    random = () => 0.5;
    const before = calls();
    const first = await ask('verified', RESETS[0]!);
    expect(first.headers.get('x-tollgate-cache')).toBe('miss');
    await settle();
    const outcomes: string[] = [];
    let i = 1;
    for (; i < RESETS.length; i++) {
      const upstream = calls();
      const res = await ask('verified', RESETS[i]!);
      const outcome = res.headers.get('x-tollgate-cache')!;
      outcomes.push(outcome);
      expect(content(res)).toBe(RESET);
      if (outcome === 'verify') expect(calls()).toBe(upstream + 1); // the user's answer is the fresh one
      await settle();
      if (outcome === 'semantic') break;
    }
    // Beta(1, 1 + n) bound <= 2 x 0.05 after n = 28 agreements: 28 verifications, then served.
    expect(outcomes.filter((o) => o === 'verify')).toHaveLength(28);
    expect(outcomes.at(-1)).toBe('semantic');
    const s = await stats('verified');
    expect(s).toMatchObject({ max_error_rate: 0.05, candidates: 29, verified: 28, disagreements: 0, served: 1 });
    expect(s.verification_rate).toBeCloseTo(28 / 29, 6);
    expect(s.error_bound).toBeLessThanOrEqual(0.05 + 1e-12);
    expect(calls() - before).toBe(1 + 28);

    // A second class of question on the route starts from the route's record: its first candidate is served.
    await ask('verified', CAPITALS[0]!);
    await settle();
    const other = await ask('verified', CAPITALS[1]!);
    expect(other.headers.get('x-tollgate-cache')).toBe('semantic');
    expect(content(other)).toBe(CAPITAL);
  });

  it('a near-miss whose answer differs is a disagreement: the entry stops being served, the near miss gets its own entry', async () => {
    // Verified (0.99 >= any serving probability, which is at most 1 - minRate): upstream's answer is served.
    random = () => 0.99;
    const near = await ask('verified', CHANGES[0]!);
    expect(near.headers.get('x-tollgate-cache')).toBe('verify');
    expect(content(near)).toBe(CHANGE);
    await settle();
    expect(await stats('verified')).toMatchObject({ disagreements: 1 });
    // The reset entry's bound rose above 2 x 0.05: its next candidate is verified again, not served.
    random = () => 0.5;
    const again = await ask('verified', RESETS[40]!);
    expect(again.headers.get('x-tollgate-cache')).toBe('verify');
    expect(content(again)).toBe(RESET);
    await settle();
    // The near-miss question now has its own entry, with its own answer.
    random = () => 0;
    const nearAgain = await ask('verified', CHANGES[2]!);
    expect(nearAgain.headers.get('x-tollgate-cache')).toBe('semantic');
    expect(content(nearAgain)).toBe(CHANGE);
  });

  it('streams are verified too: the client gets the stream, the answers are compared after it ends', async () => {
    random = () => 0.99;
    const before = (await stats('verified')).verified;
    const res = await postStream(chat, { model: 'verified', temperature: 0, stream: true, messages: [{ role: 'user', content: RESETS[41]! }] }, auth(gw.apiKey));
    expect(res.headers.get('x-tollgate-cache')).toBe('verify');
    expect(res.events.map((e) => e.choices[0]?.delta?.content ?? '').join('')).toBe(RESET);
    await settle();
    expect((await stats('verified')).verified).toBe(before + 1);
  });

  it('bad feedback on a served candidate feeds its entry estimate: it is verified again', async () => {
    random = () => 0;
    // The capital entry is trusted (route record): served.
    const served = await ask('verified', CAPITALS[20]!); // a distant paraphrase (prefix and suffix)
    expect(served.headers.get('x-tollgate-cache')).toBe('semantic');
    await settle();
    const fb = await postJson(`${gw.url}/v1/feedback`, { request_id: served.headers.get('x-request-id'), rating: 'bad' }, auth(gw.apiKey));
    expect(fb.status).toBe(200);
    expect(fb.body.cache.outcome).toBe('semantic');
    expect(await stats('verified')).toMatchObject({ feedback_bad: 1 });
    random = () => 0.5;
    const next = await ask('verified', CAPITALS[2]!); // closer to the entry than the one reported
    expect(next.headers.get('x-tollgate-cache')).toBe('verify');
    expect(content(next)).toBe(CAPITAL);
    await settle();
    // Counted once per request in the estimate, however often it is sent (the second bad report
    // on an entry removes it, as before: src/cache/semantic.ts).
    await postJson(`${gw.url}/v1/feedback`, { request_id: served.headers.get('x-request-id'), rating: 'bad' }, auth(gw.apiKey));
    expect(await stats('verified')).toMatchObject({ feedback_bad: 1 });
  });

  it('over a scripted run the wrong answers served stay within the bound', async () => {
    const delta = 0.05;
    /** 300 questions, 30% near misses (another answer), in a seeded order; counts what came back. */
    const run = async (route: string) => {
      const rand = prng(20260);
      random = prng(7);
      const n = { wrong: 0, semantic: 0, exact: 0 };
      for (let i = 0; i < 300; i++) {
        const near = rand() < 0.3;
        const pool = near ? CHANGES : RESETS;
        const res = await ask(route, pool[Math.floor(rand() * pool.length)]!);
        expect(res.status).toBe(200);
        const outcome = res.headers.get('x-tollgate-cache');
        if (outcome === 'semantic') n.semantic++;
        if (outcome === 'hit') n.exact++;
        if (content(res) !== (near ? CHANGE : RESET)) n.wrong++;
        await settle();
      }
      return n;
    };
    const unverified = await run('runplain');
    const verified = await run('run');
    const s = await stats('run');
    // Figures of this run (deterministic): printed for the report.
    console.log(
      `[verify run] without a bound: ${unverified.semantic} semantic hits, ${unverified.wrong} wrong answers / 300. ` +
        `maxErrorRate 0.05: candidates ${s.candidates}, served ${verified.semantic}, verified ${s.verified}, disagreements ${s.disagreements}, ` +
        `wrong answers ${verified.wrong}, estimated ${s.estimated_error.toFixed(4)}, bound ${s.error_bound.toFixed(4)}`,
    );
    expect(verified.semantic).toBeGreaterThan(30); // the bound still lets the cache answer
    expect(verified.wrong).toBeLessThanOrEqual(Math.ceil(delta * s.candidates));
    expect(unverified.wrong).toBeGreaterThan(Math.ceil(delta * s.candidates)); // what the bound prevents
    expect(s.error_bound).toBeLessThanOrEqual(delta + 1e-12);
    expect(s.estimated_error).toBeLessThanOrEqual(s.error_bound);
  });

  it('exports the figures in /metrics', async () => {
    const s = await stats('verified');
    const text = await (await fetch(`${gw.url}/metrics`)).text();
    expect(text).toContain(`tollgate_cache_verifications_total{route="verified",outcome="agree",source="verify"} ${s.verified - s.disagreements}`);
    expect(text).toContain(`tollgate_cache_verifications_total{route="verified",outcome="disagree",source="verify"} ${s.disagreements}`);
    expect(text).toContain('tollgate_cache_verifications_total{route="verified",outcome="disagree",source="feedback"} 1');
    expect(text).toContain(`tollgate_cache_semantic_candidates_total{route="verified"} ${s.candidates}`);
    expect(text).toContain('tollgate_cache_verification{route="verified",figure="max_error_rate"} 0.05');
    expect(text).toMatch(/tollgate_cache_verification\{route="verified",figure="error_bound"\} 0\.0\d+/);
    expect(text).toMatch(/tollgate_cache_verification\{route="verified",figure="verification_rate"\} 0\.\d+/);
    expect(text).not.toContain('route="plain"');
  });

  it('rejects an out-of-range maxErrorRate naming the field', async () => {
    await expect(
      startGateway(httpSimConfig({ up: sim }, { bad: { deployments: [{ provider: 'up', model: 'sim-small' }], cache: { semantic: { maxErrorRate: 1.5 } } } })),
    ).rejects.toThrow(/maxErrorRate/);
  });
});
