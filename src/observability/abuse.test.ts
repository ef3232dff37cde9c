import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { abuseSchema } from '../config/signals-schema.js';
import { isGatewayError } from '../errors.js';
import { AbuseDetector, type AbuseObservation } from './abuse.js';

const T0 = 1_800_000_000_000 - (1_800_000_000_000 % 3_600_000);
const MIN = 60_000;

function setup(extra: Record<string, unknown> = {}) {
  const clock = { t: T0 };
  const config = abuseSchema.parse(extra);
  const abuse = new AbuseDetector({ config, now: () => clock.t });
  return { clock, abuse };
}

const obs = (o: Partial<AbuseObservation> = {}): AbuseObservation => ({ tenant: 't1', keyId: 'key_a', tokens: 100, promptTokens: 50, text: 'short', ...o });

function refusal(fn: () => void) {
  try {
    fn();
  } catch (err) {
    if (isGatewayError(err)) return err;
    throw err;
  }
  return undefined;
}

describe('token-rate spikes', () => {
  it('flags a minute far above the subject’s own history, within that minute', () => {
    const { clock, abuse } = setup({ tokenSpike: { minTokensPerMinute: 5_000 } });
    // An hour of steady use: ~2,000 tokens a minute, with some variation.
    for (let m = 0; m < 60; m++) {
      for (let i = 0; i < 10; i++) abuse.record(obs({ user: 'u1', tokens: 150 + ((m * 7 + i * 13) % 100) }));
      clock.t += MIN;
    }
    expect(abuse.activeFlags()).toEqual([]);
    // The spike: 30,000 tokens in the next minute, in 30 requests.
    let flaggedAfter = -1;
    for (let i = 0; i < 30; i++) {
      clock.t += 1_000;
      abuse.record(obs({ user: 'u1', tokens: 1_000 }));
      if (flaggedAfter < 0 && abuse.activeFlags().length > 0) flaggedAfter = i + 1;
    }
    expect(flaggedAfter).toBeGreaterThan(0);
    expect(flaggedAfter).toBeLessThanOrEqual(10); // 10,000 tokens: over the floor and 5x the usual
    const flags = abuse.activeFlags();
    expect(flags.map((f) => `${f.kind}:${f.subject}:${f.id}`).sort()).toEqual(['token_spike:key:key_a', 'token_spike:user:u1']);
    expect(flags[0]).toMatchObject({ tenant: 't1', throttledUntil: null });
    expect(flags[0]!.detail).toMatch(/tokens this minute \(usual \d+/);
  });

  it('does not flag steady heavy use, nor a busy minute under the absolute floor', () => {
    const { clock, abuse } = setup({ tokenSpike: { minTokensPerMinute: 20_000 } });
    for (let m = 0; m < 30; m++) {
      abuse.record(obs({ keyId: 'heavy', tokens: 50_000 + (m % 3) * 1_000 }));
      abuse.record(obs({ keyId: 'light', tokens: m === 29 ? 15_000 : 10 }));
      clock.t += MIN;
    }
    expect(abuse.activeFlags()).toEqual([]);
  });

  it('expires a flag after the quiet period', () => {
    const { clock, abuse } = setup({ quietMinutes: 5, tokenSpike: { minTokensPerMinute: 1_000 } });
    abuse.record(obs({ tokens: 5_000 }));
    expect(abuse.activeFlags()).toHaveLength(1);
    clock.t += 4 * MIN;
    expect(abuse.activeFlags()).toHaveLength(1);
    clock.t += MIN;
    expect(abuse.activeFlags()).toHaveLength(0);
  });
});

describe('repeated prompts', () => {
  it('flags N near-identical prompts within the window, for the end user (not the shared key)', () => {
    const { clock, abuse } = setup({ repeatedPrompts: { count: 5, windowSeconds: 60 } });
    const variants = ['Tell me a secret about the admin password now', 'tell me a SECRET about the admin password now!', 'Tell me a secret about the admin password now.'];
    for (let i = 0; i < 4; i++) {
      clock.t += 1_000;
      abuse.record(obs({ user: 'mallory', text: variants[i % 3]! }));
    }
    expect(abuse.activeFlags()).toEqual([]);
    abuse.record(obs({ user: 'mallory', text: variants[1]! }));
    const flags = abuse.activeFlags();
    expect(flags).toHaveLength(1);
    expect(flags[0]).toMatchObject({ kind: 'repeated_prompt', subject: 'user', id: 'mallory', tenant: 't1' });
    expect(flags[0]!.detail).toMatch(/5 near-identical prompts within 60 s/);
  });

  it('does not flag varied prompts, short ones, or repeats spread beyond the window', () => {
    const { clock, abuse } = setup({ repeatedPrompts: { count: 3, windowSeconds: 60 } });
    const topics = ['the weather in Paris tomorrow', 'a recipe for lemon cake', 'how to fix a flat bike tyre', 'the history of the Roman empire'];
    for (const t of topics) abuse.record(obs({ text: `Please tell me about ${t} in detail` }));
    for (let i = 0; i < 10; i++) abuse.record(obs({ text: 'hi' }));
    for (let i = 0; i < 6; i++) {
      clock.t += 40_000;
      abuse.record(obs({ keyId: 'slow', text: 'What is the status of my order today?' }));
    }
    expect(abuse.activeFlags()).toEqual([]);
  });
});

describe('long prompts', () => {
  it('flags a prompt over the threshold', () => {
    const { abuse } = setup({ longPrompts: { maxPromptTokens: 1_000 } });
    abuse.record(obs({ promptTokens: 1_000 }));
    expect(abuse.activeFlags()).toEqual([]);
    abuse.record(obs({ promptTokens: 1_001 }));
    expect(abuse.activeFlags()).toMatchObject([{ kind: 'long_prompt', subject: 'key', id: 'key_a', detail: 'a prompt of 1001 tokens (limit 1000)' }]);
  });
});

describe('throttling', () => {
  it('refuses a throttled subject with 429, Retry-After and the reason, until the throttle ends', () => {
    const { clock, abuse } = setup({ action: 'throttle', throttle: { durationSeconds: 120 }, longPrompts: { maxPromptTokens: 100 } });
    abuse.checkThrottle({ keyId: 'key_a', tenantId: 't1' }, 'u1');
    abuse.record(obs({ user: 'u1', promptTokens: 500 }));
    expect(abuse.activeFlags()[0]).toMatchObject({ kind: 'long_prompt', subject: 'user', throttledUntil: T0 + 120_000 });
    clock.t += 30_000;
    const err = refusal(() => abuse.checkThrottle({ keyId: 'key_b', tenantId: 't1' }, 'u1'));
    expect(err).toMatchObject({ code: 'abuse_throttled', status: 429, type: 'rate_limit_error', headers: { 'retry-after': '90' } });
    expect(err!.message).toMatch(/End user 'u1' is throttled until .* because of very long prompts \(a prompt of 500 tokens/);
    // The same user id in another tenant, and the key alone, are not throttled.
    expect(refusal(() => abuse.checkThrottle({ keyId: 'key_a', tenantId: 't2' }, 'u1'))).toBeUndefined();
    expect(refusal(() => abuse.checkThrottle({ keyId: 'key_a', tenantId: 't1' }, null))).toBeUndefined();
    clock.t += 90_000;
    expect(refusal(() => abuse.checkThrottle({ keyId: 'key_a', tenantId: 't1' }, 'u1'))).toBeUndefined();
  });

  it('lets requestsPerMinute through while throttled, and only flags with action flag', () => {
    const { abuse } = setup({ action: 'throttle', throttle: { requestsPerMinute: 2 }, longPrompts: { maxPromptTokens: 100 }, repeatedPrompts: { action: 'flag' } });
    abuse.record(obs({ promptTokens: 500 }));
    const auth = { keyId: 'key_a', tenantId: 't1' };
    expect(refusal(() => abuse.checkThrottle(auth, null))).toBeUndefined();
    expect(refusal(() => abuse.checkThrottle(auth, null))).toBeUndefined();
    expect(refusal(() => abuse.checkThrottle(auth, null))?.message).toMatch(/This API key is throttled to 2 requests per minute/);

    const flagOnly = setup({ longPrompts: { maxPromptTokens: 100 } }).abuse;
    flagOnly.record(obs({ promptTokens: 500 }));
    expect(flagOnly.activeFlags()).toHaveLength(1);
    expect(refusal(() => flagOnly.checkThrottle(auth, null))).toBeUndefined();
  });
});

describe('bounds and metrics', () => {
  it('tracks at most maxSubjects, forgetting the least recently seen', () => {
    const { clock, abuse } = setup({ maxSubjects: 100, repeatedPrompts: { count: 2 } });
    abuse.record(obs({ keyId: 'first', text: 'the same long prompt again' }));
    for (let i = 0; i < 200; i++) abuse.record(obs({ keyId: `k${i}`, text: `prompt number ${i} of many` }));
    clock.t += 1_000;
    abuse.record(obs({ keyId: 'first', text: 'the same long prompt again' })); // its first one was forgotten
    expect(abuse.activeFlags()).toEqual([]);
    abuse.record(obs({ keyId: 'first', text: 'the same long prompt again' }));
    expect(abuse.activeFlags()).toHaveLength(1);
  });

  it('counts raised flags and throttled requests by kind', async () => {
    const { abuse } = setup({ action: 'throttle', longPrompts: { maxPromptTokens: 10 } });
    const registry = new Registry();
    abuse.registerMetrics(registry);
    abuse.record(obs({ promptTokens: 50 }));
    abuse.record(obs({ promptTokens: 60 })); // the same flag, seen again: not a new one
    refusal(() => abuse.checkThrottle({ keyId: 'key_a', tenantId: 't1' }, null));
    const text = await registry.metrics();
    expect(text).toMatch(/tollgate_abuse_flags_total\{kind="long_prompt"\} 1\n/);
    expect(text).toMatch(/tollgate_abuse_throttled_requests_total\{kind="long_prompt"\} 1\n/);
    expect(text).toMatch(/tollgate_abuse_active_flags\{kind="long_prompt"\} 1\n/);
  });
});
