/**
 * Prometheus metrics through a real gateway: names and label sets after real traffic (a JSON
 * answer, a stream, a cache hit, a tiered route, a rate-limit refusal), histogram buckets, the
 * tenant label's bound under 10,000 tenants, and the Grafana dashboard's metric names.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LATENCY_BUCKETS, OVERHEAD_BUCKETS } from '../../src/observability/metrics.js';
import { OTHER_TENANTS } from '../../src/observability/tenant-labels.js';
import type { SimServer } from '../../src/providers/simulated/server.js';
import { type TestGateway, auth, httpSimConfig, postJson, postStream, startGateway, startSim } from '../helpers/gateway.js';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses Prometheus text exposition into samples (comments left out). */
function parse(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return samples;
}

const labelNames = (s: Sample) => Object.keys(s.labels).sort().join(',');
const matches = (s: Sample, labels: Record<string, string | RegExp>) =>
  Object.entries(labels).every(([k, v]) => (typeof v === 'string' ? s.labels[k] === v : v.test(s.labels[k] ?? '')));

describe('Prometheus metrics', () => {
  let sim: SimServer;
  let gw: TestGateway;
  let chat: string;
  const scrape = async () => parse(await (await fetch(`${gw.url}/metrics`)).text());
  const find = (samples: Sample[], name: string, labels: Record<string, string | RegExp> = {}) => samples.filter((s) => s.name === name && matches(s, labels));
  const total = (samples: Sample[], name: string, labels: Record<string, string | RegExp> = {}) => find(samples, name, labels).reduce((n, s) => n + s.value, 0);

  beforeAll(async () => {
    sim = await startSim();
    gw = await startGateway(
      httpSimConfig(
        { up: sim },
        {
          'sim-small': { deployments: [{ provider: 'up' }], price: { input: 1, output: 2 } },
          'sim-large': { deployments: [{ provider: 'up' }], price: { input: 5, output: 10 } },
        },
        {
          routes: { auto: { tiers: { small: ['sim-small'], large: ['sim-large'] } } },
          tiers: { standard: { limits: { key: { tokensPerMinute: 50_000 } } } },
          metrics: { tenantLabels: 3 },
        },
      ),
    );
    chat = `${gw.url}/v1/chat/completions`;
    const ask = (content: string, extra: Record<string, unknown> = {}) => ({ model: 'sim-small', temperature: 0, max_tokens: 20, messages: [{ role: 'user', content }], ...extra });
    expect((await postJson(chat, ask('What is a gateway?'), auth(gw.apiKey))).status).toBe(200);
    const hit = await postJson(chat, ask('What is a gateway?'), auth(gw.apiKey));
    expect(hit.headers.get('x-tollgate-cache')).toBe('hit');
    expect((await postStream(chat, ask('Stream me a story', { stream: true }), auth(gw.apiKey))).status).toBe(200);
    expect((await postJson(chat, ask('Route me', { model: 'auto' }), auth(gw.apiKey))).status).toBe(200);
    const refused = await postJson(chat, ask('Too big', { max_tokens: 60_000 }), auth(gw.apiKey));
    expect(refused.status).toBe(429);
    // Settle (which counts each request) runs after each response: wait until all five have settled.
    await gw.settled();
  });
  afterAll(async () => {
    await gw.close();
    await sim.close();
  });

  it('counts requests and latency by route, model, status, tier and deployment', async () => {
    const s = await scrape();
    const requestLabels = 'deployment,model,route,status,tier';
    for (const name of ['tollgate_requests_total', 'tollgate_request_duration_seconds_count']) {
      const series = find(s, name);
      expect(series.length).toBeGreaterThan(0);
      for (const x of series) expect(labelNames(x)).toBe(requestLabels);
    }
    const route = '/v1/chat/completions';
    expect(total(s, 'tollgate_requests_total', { route, model: 'sim-small', status: '200', tier: 'none', deployment: 'sim-small@up' })).toBe(2);
    expect(total(s, 'tollgate_requests_total', { route, model: 'sim-small', status: '200', tier: 'none', deployment: 'cache' })).toBe(1);
    expect(total(s, 'tollgate_requests_total', { route, model: 'auto', status: '200', tier: /^(small|large)$/, deployment: /^sim-(small|large)@up$/ })).toBe(1);
    expect(total(s, 'tollgate_requests_total', { route, model: 'sim-small', status: '429', tier: 'none', deployment: 'none' })).toBe(1);
    expect(total(s, 'tollgate_request_duration_seconds_count', { model: 'auto' })).toBe(1);
    const errors = find(s, 'tollgate_errors_total', { code: 'rate_limit_exceeded' });
    expect(errors.map(labelNames)).toEqual(['code,deployment,model,route,status,tier']);
    expect(errors[0]!.labels).toMatchObject({ status: '429', tier: 'none', deployment: 'none' });
  });

  it('records time to first token for the stream, and gateway overhead for requests answered upstream', async () => {
    const s = await scrape();
    const ttft = find(s, 'tollgate_time_to_first_token_seconds_count');
    expect(ttft.map((x) => x.labels)).toEqual([{ route: '/v1/chat/completions', tier: 'none', model: 'sim-small' }]);
    expect(ttft[0]!.value).toBe(1);
    const overhead = find(s, 'tollgate_gateway_overhead_seconds_count');
    expect(overhead.map(labelNames)).toEqual(['route']);
    expect(overhead[0]!.value).toBe(3); // the JSON answer, the stream and the tiered route; not the cache hit nor the refusal
  });

  it('counts the cache hit and what it saved, the refusal, breaker states and queue depth', async () => {
    const s = await scrape();
    expect(total(s, 'tollgate_cache_requests_total', { model: 'sim-small', outcome: 'hit' })).toBe(1);
    expect(total(s, 'tollgate_cache_requests_total', { model: 'sim-small', outcome: 'miss' })).toBe(2);
    expect(total(s, 'tollgate_cache_saved_usd_total', { model: 'sim-small' })).toBeGreaterThan(0);
    expect(find(s, 'tollgate_refusals_total').map((x) => [x.labels, x.value])).toEqual([[{ reason: 'rate_limit_exceeded' }, 1]]);
    // Every configured deployment is there from the start, closed.
    expect(find(s, 'tollgate_circuit_breaker_state').map((x) => [x.labels['deployment'], x.value]).sort()).toEqual([
      ['sim-large@up', 0],
      ['sim-small@up', 0],
    ]);
    const text = await (await fetch(`${gw.url}/metrics`)).text();
    expect(text).toContain('# TYPE tollgate_jobs_queue_depth gauge');
  });

  it("counts tokens and cost by tenant: the demo tenant is named from its second billed request", async () => {
    const s = await scrape();
    for (const x of find(s, 'tollgate_tokens_total')) expect(labelNames(x)).toBe('direction,tenant');
    expect(total(s, 'tollgate_tokens_total', { tenant: gw.tenantId, direction: 'in' })).toBeGreaterThan(0);
    expect(total(s, 'tollgate_tokens_total', { tenant: gw.tenantId, direction: 'out' })).toBeGreaterThan(0);
    expect(total(s, 'tollgate_tokens_total', { tenant: OTHER_TENANTS, direction: 'in' })).toBeGreaterThan(0); // its first request
    expect(total(s, 'tollgate_cost_usd_total', { tenant: gw.tenantId })).toBeGreaterThan(0);
  });

  it('has latency buckets that resolve p50/p95/p99 from 1 ms to 120 s, and fine overhead buckets', async () => {
    const s = await scrape();
    const bounds = (name: string) => {
      const first = find(s, `${name}_bucket`)[0]!;
      const { le: _le, ...series } = first.labels;
      return find(s, `${name}_bucket`, series).map((x) => x.labels['le']);
    };
    const asText = (b: number[]) => [...b.map(String), '+Inf'];
    expect(bounds('tollgate_request_duration_seconds')).toEqual(asText(LATENCY_BUCKETS));
    expect(bounds('tollgate_time_to_first_token_seconds')).toEqual(asText(LATENCY_BUCKETS));
    expect(bounds('tollgate_gateway_overhead_seconds')).toEqual(asText(OVERHEAD_BUCKETS));
    expect(LATENCY_BUCKETS[0]).toBeLessThanOrEqual(0.001);
    expect(LATENCY_BUCKETS.at(-1)).toBeGreaterThanOrEqual(120);
    // A quantile is interpolated within its bucket: neighbouring bounds close together keep the error small.
    for (let i = 1; i < LATENCY_BUCKETS.length; i++) {
      const ratio = LATENCY_BUCKETS[i]! / LATENCY_BUCKETS[i - 1]!;
      expect(ratio).toBeLessThanOrEqual(LATENCY_BUCKETS[i - 1]! >= 0.05 ? 1.5 : 2.5);
    }
    expect(OVERHEAD_BUCKETS[0]).toBeLessThanOrEqual(0.00005);
    expect(OVERHEAD_BUCKETS).toContain(0.0002); // the p50 target
    expect(OVERHEAD_BUCKETS.at(-1)).toBeGreaterThanOrEqual(0.1);
  });

  it('keeps the tenant label bounded under 10,000 distinct tenants, with every token counted', async () => {
    const before = await scrape();
    const tokensBefore = total(before, 'tollgate_tokens_total');
    const costBefore = total(before, 'tollgate_cost_usd_total');
    let tokensFed = 0;
    let costFed = 0;
    const feed = (tenant: string, tokensIn: number, tokensOut: number, costPico: number) => {
      gw.gateway.metrics.recordTenantUsage(tenant, tokensIn, tokensOut, costPico);
      tokensFed += tokensIn + tokensOut;
      costFed += costPico / 1e12;
    };
    const heavy = ['whale-a', 'whale-b'];
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 10_000; i++) {
        feed(`tenant-${(i * 7_919 + round * 3_331) % 10_000}`, 10 + (i % 50), 5 + (i % 30), 1_000_000 + (i % 97) * 10_000);
        if (i % 100 === 0) feed(heavy[(i / 100) % 2]!, 2_000, 1_000, 500_000_000);
      }
    }
    const after = await scrape();
    const tenants = new Set([...find(after, 'tollgate_tokens_total'), ...find(after, 'tollgate_cost_usd_total')].map((x) => x.labels['tenant']));
    const cap = gw.gateway.metrics.tenantLabels.maxLabels;
    expect(cap).toBe(6); // metrics.tenantLabels: 3
    expect(tenants.size).toBeLessThanOrEqual(cap + 1); // the named ones and __other__
    for (const w of heavy) expect(tenants).toContain(w);
    expect(tenants).toContain(OTHER_TENANTS);
    expect(total(after, 'tollgate_tokens_total') - tokensBefore).toBe(tokensFed);
    expect(total(after, 'tollgate_cost_usd_total') - costBefore).toBeCloseTo(costFed, 6);
  });

  it('serves every metric the Grafana dashboard queries (docs/grafana/tollgate.json)', async () => {
    const dashboard = JSON.parse(readFileSync(new URL('../../docs/grafana/tollgate.json', import.meta.url), 'utf8'));
    expect(dashboard.templating.list.find((v: { name: string }) => v.name === 'datasource')).toMatchObject({ type: 'datasource', query: 'prometheus' });
    const exprs: string[] = [];
    for (const panel of dashboard.panels) {
      if (panel.type === 'row') continue;
      expect(panel.datasource).toEqual({ type: 'prometheus', uid: '${datasource}' });
      for (const t of panel.targets) exprs.push(t.expr);
    }
    for (const v of dashboard.templating.list) if (v.definition) exprs.push(v.definition);
    const names = new Set(exprs.flatMap((e) => e.match(/\btollgate_[a-z0-9_]+/g) ?? []));
    expect(names.size).toBeGreaterThan(10);
    const text = await (await fetch(`${gw.url}/metrics`)).text();
    const typeOf = (name: string) => new RegExp(`^# TYPE ${name} (\\w+)$`, 'm').exec(text)?.[1];
    const missing = [...names].filter((name) => {
      const base = name.replace(/_(bucket|sum|count)$/, '');
      return base === name ? typeOf(name) === undefined : typeOf(base) !== 'histogram' && typeOf(name) === undefined;
    });
    expect(missing).toEqual([]);
  });
});
