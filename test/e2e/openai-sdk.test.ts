/**
 * Acceptance: the official `openai` SDK, unchanged but for its base URL, against a gateway
 * started by the CLI as a user would start it.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningCli, bannerKeys, startCli } from '../helpers/cli.js';

const CONFIG = `
server: { port: 0 }
providers:
  sim:
    kind: simulated
    models:
      sim-small: { ttftMs: { median: 5, p95: 10 }, tokensPerSecond: 2000 }
      sim-embed: { type: embedding, dimensions: 32 }
  busy:
    kind: simulated
    models: { sim-small: {} }
    faults: { errorRate: { "429": 1 }, retryAfterSeconds: 0 }
models:
  sim-small:
    deployments: [{ provider: sim }]
    price: { input: 0.15, output: 0.6 }
  sim-embed:
    type: embedding
    deployments: [{ provider: sim }]
  always-busy:
    deployments: [{ provider: busy, model: sim-small }]
resilience:
  retry: { maxRetries: 0 }
`;

describe('the official openai SDK against a started gateway', () => {
  let dir: string;
  let gw: RunningCli;
  let client: OpenAI;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tollgate-e2e-'));
    writeFileSync(join(dir, 'tollgate.yaml'), CONFIG);
    gw = await startCli([], dir); // picks up ./tollgate.yaml
    client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: bannerKeys(gw.output()).demo, maxRetries: 0 });
  });
  afterAll(async () => {
    expect(await gw.stop()).toBe(0); // clean shutdown on SIGTERM
    rmSync(dir, { recursive: true, force: true });
  });

  it('chat completion', async () => {
    const res = await client.chat.completions.create({ model: 'sim-small', messages: [{ role: 'user', content: 'Say hi' }], seed: 1 });
    expect(res.object).toBe('chat.completion');
    expect(res.choices[0]?.message.content?.length).toBeGreaterThan(0);
    expect(res.usage?.total_tokens).toBeGreaterThan(0);
  });

  it('raw response carries Tollgate headers', async () => {
    const { response } = await client.chat.completions
      .create({ model: 'sim-small', messages: [{ role: 'user', content: 'Say hi' }] })
      .withResponse();
    expect(response.headers.get('x-tollgate-model')).toBe('sim-small');
    expect(response.headers.get('x-request-id')).toBeTruthy();
    expect(Number(response.headers.get('x-tollgate-cost-usd'))).toBeGreaterThan(0);
  });

  it('streaming, with usage when asked', async () => {
    const stream = await client.chat.completions.create({
      model: 'sim-small',
      messages: [{ role: 'user', content: 'Tell me a story' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let usage: OpenAI.CompletionUsage | undefined | null;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? '';
      if (chunk.usage) usage = chunk.usage;
    }
    expect(text.length).toBeGreaterThan(0);
    expect(usage?.completion_tokens).toBeGreaterThan(0);
  });

  it('embeddings', async () => {
    const res = await client.embeddings.create({ model: 'sim-embed', input: ['hello', 'world'] });
    expect(res.data).toHaveLength(2);
    expect(res.data[0]?.embedding).toHaveLength(32);
  });

  it('models list', async () => {
    const ids: string[] = [];
    for await (const m of client.models.list()) ids.push(m.id);
    expect(ids).toEqual(['sim-small', 'sim-embed', 'always-busy']);
  });

  it('maps errors to the SDK error classes', async () => {
    const bad = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'tg-wrong', maxRetries: 0 });
    await expect(bad.chat.completions.create({ model: 'sim-small', messages: [{ role: 'user', content: 'x' }] })).rejects.toBeInstanceOf(
      OpenAI.AuthenticationError,
    );
    await expect(client.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] })).rejects.toBeInstanceOf(
      OpenAI.NotFoundError,
    );
    await expect(client.chat.completions.create({ model: 'always-busy', messages: [{ role: 'user', content: 'x' }] })).rejects.toBeInstanceOf(
      OpenAI.RateLimitError,
    );
    const err = await client.chat.completions
      .create({ model: 'sim-small', messages: [{ role: 'user', content: 'x' }], temperature: 7 })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as InstanceType<typeof OpenAI.BadRequestError>).param).toBe('temperature');
  });
});
