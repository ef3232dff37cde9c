/**
 * Issue 14, item 3: a failure that is the gateway's own (it cannot serialize or translate the
 * caller's body) is the caller's 400, never retried and never counted by a circuit breaker, so
 * one tenant cannot open a model's breaker for everyone.
 */
import { describe, expect, it } from 'vitest';
import { resilienceSchema } from '../../config/schema.js';
import { GatewayError } from '../../errors.js';
import { GatewayMetrics } from '../../observability/metrics.js';
import { type ChatCompletion, LocalRequestError, type Provider, serializeRequest } from '../../providers/types.js';
import { BreakerRegistry } from '../../resilience/circuit-breaker.js';
import type { Deployment } from '../../routing/catalog.js';
import type { RequestContext } from '../context.js';
// @ts-ignore TS6059: test helpers live outside tsconfig's rootDir (src); the import is type-checked all the same.
import { chatContext } from '../../../test/helpers/context.js';
import { invokeStage } from './invoke.js';

const ANSWER = { id: 'c', object: 'chat.completion', created: 0, model: 'm', choices: [] } as unknown as ChatCompletion;

/** A provider that serializes the body like the HTTP adapters do, and counts its calls. */
function serializingProvider(calls: { n: number }, fail?: () => never): Provider {
  const chat = async (body: unknown) => {
    calls.n++;
    if (fail) fail();
    serializeRequest(body);
    return ANSWER;
  };
  return { id: 'fake', kind: 'simulated', chat, chatStream: chat as never, embed: chat as never, close: async () => {} };
}

function context(deployments: Deployment[], body: Record<string, unknown>): RequestContext {
  return chatContext({ chain: deployments, body });
}

const deployment = (provider: Provider, id: string): Deployment => ({ id, providerId: provider.id, provider, upstreamModel: 'm', timeoutMs: undefined, model: 'm', price: undefined });

/** A body JSON.stringify cannot serialize (a cycle stands for nesting too deep for the stack). */
function unserializable(): Record<string, unknown> {
  const parameters: Record<string, unknown> = { type: 'object' };
  parameters['self'] = parameters;
  return { tools: [{ type: 'function', function: { name: 'f', parameters } }] };
}

describe('invoke: local failures are not upstream failures', () => {
  const breakers = new BreakerRegistry({ failureThreshold: 3, cooldownMs: 15_000, halfOpenMaxProbes: 1, successesToClose: 1 });
  const invoke = invokeStage({
    resilience: resilienceSchema.parse({ retry: { maxRetries: 2, baseDelayMs: 0, maxDelayMs: 0 } }),
    breakers,
    metrics: new GatewayMetrics({ defaultMetrics: false }),
    random: () => 0,
  });

  it('a body that cannot be serialized is a 400, tried once, and the breaker stays closed for everyone', async () => {
    const calls = { n: 0 };
    const dep = deployment(serializingProvider(calls), 'a@fake');
    for (let i = 0; i < 10; i++) {
      const ctx = context([dep, deployment(serializingProvider(calls), 'b@fake')], unserializable());
      const err = await invoke(ctx).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(GatewayError);
      expect(err).toMatchObject({ status: 400, code: 'invalid_request' });
      expect(ctx.attempts).toEqual([expect.objectContaining({ deployment: 'a@fake', outcome: 'local_error' })]);
    }
    expect(calls.n).toBe(10); // no retries, no fallback
    expect(breakers.get('a@fake').state).toBe('closed');
    // Another tenant's ordinary request is served.
    const ok = context([dep], {});
    await invoke(ok);
    expect(ok.result?.kind).toBe('chat');
  });

  it('a translation the adapter refuses (LocalRequestError) is a 400 too', async () => {
    const calls = { n: 0 };
    const dep = deployment(
      serializingProvider(calls, () => {
        throw new LocalRequestError('tool_calls arguments are not JSON');
      }),
      'c@fake',
    );
    const err = await invoke(context([dep], {})).catch((e: unknown) => e);
    expect(err).toMatchObject({ status: 400, code: 'invalid_request' });
    expect((err as Error).message).toContain('tool_calls arguments are not JSON');
    expect(breakers.get('c@fake').state).toBe('closed');
  });

  it("the gateway's own bug in one adapter falls back to the next deployment, without counting against the breaker", async () => {
    const calls = { n: 0 };
    const buggy = deployment(
      serializingProvider(calls, () => {
        throw new TypeError("Cannot read properties of undefined (reading 'x')");
      }),
      'd@fake',
    );
    for (let i = 0; i < 5; i++) {
      const ctx = context([buggy, deployment(serializingProvider(calls), 'e@fake')], {});
      await invoke(ctx);
      expect(ctx.servedBy?.id).toBe('e@fake');
    }
    expect(breakers.get('d@fake').state).toBe('closed');
    const alone = await invoke(context([buggy], {})).catch((e: unknown) => e);
    expect(alone).toMatchObject({ status: 502, code: 'upstream_error' });
  });
});
