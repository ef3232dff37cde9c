/** `npm start` on a fresh machine: zero config, keys printed once, the printed curl line works. */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bannerKeys, runCli, startCli } from '../helpers/cli.js';

describe('first start with no config at all', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'tollgate-first-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('creates its SQLite store, prints an admin key, a demo key and a working request, once', async () => {
    const first = await startCli(['--port', '0'], dir);
    try {
      const out = first.output();
      const { demo, admin } = bannerKeys(out);
      expect(admin).toMatch(/^tg-admin-/);
      expect(out).toMatch(/curl -i http:\/\/127\.0\.0\.1:\d+\/v1\/chat\/completions -H "Authorization: Bearer tg-/);
      expect(existsSync(join(dir, '.tollgate', 'tollgate.db'))).toBe(true);
      const res = await fetch(`${first.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${demo}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'sim-small', messages: [{ role: 'user', content: 'Hello!' }] }),
      });
      expect(res.status).toBe(200);
      expect((await res.json()).choices[0].message.content.length).toBeGreaterThan(0);
      // Secrets never reach the logs: only the banner shows them, once.
      expect(out.split(demo).length - 1).toBe(2); // banner line + curl line
    } finally {
      expect(await first.stop()).toBe(0);
    }
    const second = await startCli(['--port', '0'], dir);
    try {
      expect(second.output()).not.toContain('created your first keys');
    } finally {
      await second.stop();
    }
  });

  it('shows the product with no config: `auto` routes by tier, answers carry limits, asking again is a cache hit, a spent budget is 402', async () => {
    const demoDir = mkdtempSync(join(tmpdir(), 'tollgate-demo-'));
    const gw = await startCli(['--port', '0'], demoDir);
    try {
      const out = gw.output();
      const { demo, admin } = bannerKeys(out);
      // The banner: a curl line for `auto`, the dashboard, the demo tier's limits.
      expect(out).toMatch(/curl -i http:\/\/127\.0\.0\.1:\d+\/v1\/chat\/completions .*"model":"auto"/);
      expect(out).toContain(`Dashboard: ${gw.url}/dashboard`);
      expect(out).toMatch(/Limits of the "standard" tier: .*requests and .* tokens a minute per key.*a budget of \$1\.00 a day per tenant/);
      const headers = { authorization: `Bearer ${demo}`, 'content-type': 'application/json' };
      const ask = (content: string) =>
        fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers, body: JSON.stringify({ model: 'auto', temperature: 0, messages: [{ role: 'user', content }] }) });

      const models = (await (await fetch(`${gw.url}/v1/models`, { headers })).json()) as { data: Array<{ id: string }> };
      expect(models.data.map((m) => m.id)).toContain('auto');

      const first = await ask('Hello! How are you doing today?');
      expect(first.status).toBe(200);
      expect(first.headers.get('x-tollgate-tier')).toBe('small');
      expect(first.headers.get('x-tollgate-model')).toBe('sim-small');
      expect(first.headers.get('x-tollgate-cache')).toBe('miss');
      expect(Number(first.headers.get('x-tollgate-cost-usd'))).toBeGreaterThan(0);
      expect(Number(first.headers.get('x-ratelimit-limit-requests'))).toBeGreaterThan(0);
      expect(Number(first.headers.get('x-ratelimit-limit-tokens'))).toBeGreaterThan(0);
      const answer = ((await first.json()) as { choices: Array<{ message: { content: string } }> }).choices[0]!.message.content;

      const again = await ask('Hello! How are you doing today?');
      expect(again.headers.get('x-tollgate-cache')).toBe('hit');
      expect(Number(again.headers.get('x-tollgate-cost-usd'))).toBe(0);
      expect(((await again.json()) as { choices: Array<{ message: { content: string } }> }).choices[0]!.message.content).toBe(answer);

      const hard = await ask(
        'Design a URL shortening service that handles 100 million new URLs per day and 10 billion redirects per day. Cover the API, the data model, the storage choice, caching, how IDs are generated without collisions, and how you would serve redirects with low latency from several regions. Discuss the trade-offs of your choices.',
      );
      expect(hard.status).toBe(200);
      expect(hard.headers.get('x-tollgate-tier')).toBe('large');
      expect(hard.headers.get('x-tollgate-model')).toBe('sim-large');
      await hard.arrayBuffer();

      // The daily budget is real: lowered below what was spent, the next request is refused.
      const put = await fetch(`${gw.url}/admin/v1/tenants/default/policy`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
        body: JSON.stringify({ budgets: { tenant: { dailyUsd: 0.00001 } } }),
      });
      expect(put.status).toBe(200);
      const refused = await ask('One more question, please: what is a token bucket?');
      expect(refused.status).toBe(402);
      expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('budget_exceeded');
    } finally {
      expect(await gw.stop()).toBe(0);
      rmSync(demoDir, { recursive: true, force: true });
    }
  });

  it('manages tenants and keys from the CLI', async () => {
    expect((await runCli(['tenants', 'create', 'Acme', '--id', 'acme', '--tier', 'premium'], dir)).code).toBe(0);
    const created = await runCli(['keys', 'create', '--tenant', 'acme', '--models', 'sim-small', '--json'], dir);
    expect(created.code).toBe(0);
    const key = JSON.parse(created.stdout);
    expect(key).toMatchObject({ tenant_id: 'acme', tier: 'premium', allowed_models: ['sim-small'] });
    const list = await runCli(['keys', 'list', '--tenant', 'acme'], dir);
    expect(list.stdout).toContain(key.id);
    expect(list.stdout).not.toContain(key.key);
    expect((await runCli(['keys', 'revoke', key.id], dir)).stdout).toContain('Revoked');
    expect((await runCli(['keys', 'list', '--tenant', 'acme'], dir)).stdout).not.toContain(key.id);
    expect((await runCli(['tenants', 'list'], dir)).stdout).toMatch(/acme\s+Acme\s+premium/);
    const bad = await runCli(['keys', 'create', '--tenant', 'acme', '--tier', 'gold'], dir);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("unknown tier 'gold'");
  });

  it('check-config names the exact path and problem and exits non-zero', async () => {
    writeFileSync(join(dir, 'bad.yaml'), 'providers:\n  openai:\n    kind: openai-compatible\n    baseUrl: nope\n');
    const bad = await runCli(['check-config', '--config', 'bad.yaml'], dir);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('providers.openai.baseUrl: must be a URL');
    const ok = await runCli(['check-config'], dir);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain('OK');
    const startBad = await runCli(['start', '--config', 'bad.yaml'], dir);
    expect(startBad.code).toBe(1);
    expect(startBad.stderr).toContain('providers.openai.baseUrl');
  });
});
