/**
 * The dashboard's HTTP side: static assets (types, caching, no path tricks), the admin-only
 * stream and summary. The page itself is exercised in a browser by test/e2e/dashboard.browser.test.ts.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SimServer } from '../../src/providers/simulated/server.js';
import { type TestGateway, auth, hello, httpSimConfig, postJson, startGateway, startSim } from '../helpers/gateway.js';

const ROOT = join(import.meta.dirname, '..', '..');

/** Reads SSE events from a stream until `count` arrived. */
async function readEvents(url: string, key: string, count: number): Promise<Array<{ event: string; data: any }>> {
  const ctl = new AbortController();
  const res = await fetch(url, { headers: auth(key), signal: ctl.signal });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
  const events: Array<{ event: string; data: any }> = [];
  let buffer = '';
  const decoder = new TextDecoder();
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(chunk, { stream: true });
    let end: number;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const event = /^event: (.*)$/m.exec(block)?.[1] ?? 'message';
      const data = /^data: (.*)$/m.exec(block)?.[1];
      if (data) events.push({ event, data: JSON.parse(data) });
    }
    if (events.length >= count) break;
  }
  ctl.abort();
  return events;
}

describe('dashboard routes', () => {
  let sim: SimServer;
  let gw: TestGateway;
  beforeAll(async () => {
    if (!existsSync(join(ROOT, 'dist', 'dashboard', 'index.html'))) execFileSync(process.execPath, [join(ROOT, 'scripts', 'build-dashboard.mjs')], { stdio: 'inherit' });
    sim = await startSim();
    gw = await startGateway(
      httpSimConfig({ up: sim }, { 'sim-small': { deployments: [{ provider: 'up' }], price: { input: 1, output: 2 } } }, { tiers: { standard: { budgets: { tenant: { dailyUsd: 2 } } } } }),
    );
  });
  afterAll(async () => {
    await gw.close();
    await sim.close();
  });

  it('serves the page and its bundled assets with their types and caching, offline', async () => {
    const redirect = await fetch(`${gw.url}/dashboard`, { redirect: 'manual' });
    expect(redirect.status).toBe(302);
    expect(redirect.headers.get('location')).toBe('/dashboard/');
    const page = await fetch(`${gw.url}/dashboard/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(page.headers.get('cache-control')).toBe('no-cache');
    expect(page.headers.get('content-security-policy')).toMatch(/default-src 'self'/);
    const html = await page.text();
    expect(html).not.toMatch(/https?:\/\//); // nothing from a CDN
    const js = /src="\.\/(app-[A-Z0-9]+\.js)"/.exec(html)?.[1];
    const css = /href="\.\/(app-[A-Z0-9]+\.css)"/.exec(html)?.[1];
    expect(js && css).toBeTruthy();
    const script = await fetch(`${gw.url}/dashboard/${js}`);
    expect(script.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(script.headers.get('cache-control')).toContain('immutable');
    expect(await script.text()).toContain('uplot'); // uPlot is bundled in (its CSS class names)
    const style = await fetch(`${gw.url}/dashboard/${css}`);
    expect(style.headers.get('content-type')).toBe('text/css; charset=utf-8');
    expect(await style.text()).toContain('.u-legend'); // uPlot's CSS, bundled with ours
    const again = await fetch(`${gw.url}/dashboard/${js}`, { headers: { 'if-none-match': script.headers.get('etag')! } });
    expect(again.status).toBe(304);
    for (const path of ['/dashboard/nope.js', '/dashboard/..%2Fpackage.json', '/dashboard/%2E%2E%2F%2E%2E%2Fpackage.json']) {
      const res = await fetch(`${gw.url}${path}`);
      expect(res.status, path).toBe(404);
    }
  });

  it('keeps its data behind an admin key, with problem+json errors', async () => {
    for (const path of ['/admin/v1/dashboard/summary', '/admin/v1/dashboard/stream']) {
      const none = await fetch(`${gw.url}${path}`);
      expect(none.status).toBe(401);
      expect(none.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      const api = await fetch(`${gw.url}${path}`, { headers: auth(gw.apiKey) });
      expect(api.status).toBe(403);
    }
    const bad = await fetch(`${gw.url}/admin/v1/dashboard/stream?minutes=0`, { headers: auth(gw.adminKey) });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as any).detail).toMatch(/minutes must be a whole number from 1 to 60/);
  });

  it('streams snapshots of live statistics and summarizes spend and budgets', async () => {
    for (let i = 0; i < 4; i++) expect((await postJson(`${gw.url}/v1/chat/completions`, hello('sim-small', { user: 'carol' }), auth(gw.apiKey))).status).toBe(200);
    await gw.settled(); // counted by the live statistics and in the Ledger (the summary reads it)
    const events = await readEvents(`${gw.url}/admin/v1/dashboard/stream?minutes=5`, gw.adminKey, 2);
    expect(events.map((e) => e.event)).toEqual(['snapshot', 'snapshot']);
    const s = events[1]!.data;
    expect(s.window_minutes).toBe(5);
    expect(s.current.requests).toBe(4);
    expect(s.hour.costUsd).toBeGreaterThan(0);
    expect(s.series.t.length).toBe(s.series.requestsPerSec.length);
    expect(s.series.requestsPerSec.some((v: number) => v > 0)).toBe(true);
    expect(s.series.modelMix['sim-small'].some((v: number) => v > 0)).toBe(true);
    expect(s.series.latency['none'].p95.some((v: number | null) => v !== null)).toBe(true);
    expect(Array.isArray(s.queue)).toBe(true);
    expect(JSON.stringify(events)).not.toContain(gw.apiKey);

    const summary = (await (await fetch(`${gw.url}/admin/v1/dashboard/summary`, { headers: auth(gw.adminKey) })).json()) as any;
    expect(summary.top_tenants[0]).toMatchObject({ tenant: gw.tenantId, requests: 4 });
    expect(summary.top_users[0]).toMatchObject({ user: 'carol', tenant: gw.tenantId });
    expect(summary.top_models[0]).toMatchObject({ model: 'sim-small' });
    expect(summary.budgets[0]).toMatchObject({ tenant_id: gw.tenantId, period: 'day', limit_usd: '2' });
    expect(summary.budgets[0].used_fraction).toBeGreaterThan(0);
  });
});
