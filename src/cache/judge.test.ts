import { afterEach, describe, expect, it, vi } from 'vitest';
import type { ChatCompletion, ChatCompletionRequest, Provider } from '../providers/types.js';
import type { CatalogModel } from '../routing/catalog.js';
import { createLogger } from '../observability/logger.js';
import { CacheJudge, type JudgePolicy, parseVerdict } from './judge.js';

const log = createLogger('silent');
const policy: JudgePolicy = { model: 'judge', band: 0.1, timeoutMs: 100, maxCachedVerdicts: 2 };

function completion(content: string): ChatCompletion {
  return {
    id: 'x',
    object: 'chat.completion',
    created: 0,
    model: 'm',
    choices: [{ index: 0, message: { role: 'assistant', content, refusal: null }, logprobs: null, finish_reason: 'stop' }],
    usage: { prompt_tokens: 40, completion_tokens: 1, total_tokens: 41 },
  } as ChatCompletion;
}

/** A provider whose chat answers come from `answer` (which may throw or never resolve). */
function provider(answer: (req: ChatCompletionRequest) => Promise<ChatCompletion>): Provider & { calls: number } {
  const p = {
    id: 'p',
    kind: 'simulated' as const,
    calls: 0,
    chat: (req: ChatCompletionRequest) => {
      p.calls++;
      return answer(req);
    },
    chatStream: () => Promise.reject(new Error('no')),
    embed: () => Promise.reject(new Error('no')),
    close: async () => {},
  };
  return p as unknown as Provider & { calls: number };
}

function judgeOver(...providers: Provider[]): CacheJudge {
  const model: CatalogModel = {
    name: 'judge',
    type: 'chat',
    ownedBy: 'x',
    price: { input: 1, output: 2 },
    deployments: providers.map((p, i) => ({ id: `d${i}`, providerId: p.id, provider: p, upstreamModel: 'small', timeoutMs: undefined, model: 'judge', price: { input: 1, output: 2 } })),
  };
  return new CacheJudge({ resolve: (name) => (name === 'judge' ? model : undefined), log });
}

const ask = (judge: CacheJudge, query: string, cached: string, tenantId = 't1') => judge.judge({ route: 'r', tenantId, policy, query, cached });

afterEach(() => {
  vi.useRealTimers();
});

describe('CacheJudge', () => {
  it('reads yes / no from the answer', () => {
    expect(parseVerdict(completion('Yes.'))).toBe('yes');
    expect(parseVerdict(completion(' yes, they do'))).toBe('yes');
    expect(parseVerdict(completion('No'))).toBe('no');
    expect(parseVerdict(completion('Yesterday'))).toBe('no');
    expect(parseVerdict(completion(''))).toBe('no');
  });

  it('prices the call, remembers the verdict (either order, normalized), per tenant, within its bound', async () => {
    const p = provider(async () => completion('Yes'));
    const judge = judgeOver(p);
    const first = await ask(judge, 'How do I reset it?', 'Reset: how?');
    expect(first).toMatchObject({ verdict: 'yes', cached: false, promptTokens: 40, completionTokens: 1 });
    expect(first.costPico).toBe(40 * 1_000_000 + 1 * 2_000_000);
    expect(await ask(judge, 'reset how', 'how do i reset it')).toMatchObject({ verdict: 'yes', cached: true, costPico: 0 });
    expect(p.calls).toBe(1);
    expect(await ask(judge, 'How do I reset it?', 'Reset: how?', 't2')).toMatchObject({ cached: false }); // another tenant
    expect(p.calls).toBe(2);
    // maxCachedVerdicts 2: a third pair pushes out the least recently used one (t1's).
    await ask(judge, 'a', 'b');
    expect(await ask(judge, 'How do I reset it?', 'Reset: how?')).toMatchObject({ cached: false });
    expect(judge.stats()).toEqual([
      { route: 'r', model: 'judge', calls: { yes: 4, no: 0, error: 0, timeout: 0 }, cachedVerdicts: { yes: 1, no: 0 }, costPico: 4 * first.costPico },
    ]);
  });

  it('falls over to the next deployment; every deployment failing is an error, never remembered', async () => {
    const broken = provider(async () => {
      throw new Error('boom');
    });
    const ok = provider(async () => completion('no'));
    expect(await ask(judgeOver(broken, ok), 'q1', 'q2')).toMatchObject({ verdict: 'no' });
    const judge = judgeOver(broken);
    expect(await ask(judge, 'q1', 'q2')).toMatchObject({ verdict: 'error', costPico: 0 });
    expect(await ask(judge, 'q1', 'q2')).toMatchObject({ verdict: 'error', cached: false });
  });

  it('a provider that never answers (and ignores its signal) is a timeout at timeoutMs, never remembered', async () => {
    vi.useFakeTimers();
    const hung = provider(() => new Promise<ChatCompletion>(() => {}));
    const judge = judgeOver(hung, provider(async () => completion('yes')));
    const pending = ask(judge, 'q1', 'q2');
    await vi.advanceTimersByTimeAsync(policy.timeoutMs);
    expect(await pending).toMatchObject({ verdict: 'timeout', cached: false, costPico: 0 });
    expect(judge.stats()[0]!.calls.timeout).toBe(1);
  });

  it('the caller aborting ends the call at once', async () => {
    const hung = provider(() => new Promise<ChatCompletion>(() => {}));
    const judge = judgeOver(hung);
    const controller = new AbortController();
    const pending = judge.judge({ route: 'r', tenantId: 't', policy: { ...policy, timeoutMs: 60_000 }, query: 'a', cached: 'b', signal: controller.signal });
    controller.abort();
    expect(await pending).toMatchObject({ verdict: 'error' });
  });

  it('check() names the field for an unknown or non-chat model', () => {
    const judge = judgeOver(provider(async () => completion('yes')));
    expect(() => judge.check('nope', 'cache.semantic.judge.model')).toThrow("cache.semantic.judge.model: unknown model 'nope'");
    expect(() => judge.check('judge', 'f')).not.toThrow();
  });
});
