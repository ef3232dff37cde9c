import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, buildConfig, interpolateEnv, loadConfig, parseConfigText } from './loader.js';

function problems(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('config loader', () => {
  it('with no file at all, serves the built-in simulator on 127.0.0.1:8080 in embedded mode', () => {
    const c = loadConfig(undefined);
    expect(c.server).toMatchObject({ host: '127.0.0.1', port: 8080 });
    expect(c.storage).toEqual({ kind: 'embedded', dir: './.tollgate', busyTimeoutMs: 5_000 });
    expect(c.providers['sim']?.kind).toBe('simulated');
    expect(Object.keys(c.models)).toEqual(['sim-small', 'sim-medium', 'sim-large', 'sim-embed']);
    expect(c.models['sim-large']?.price).toMatchObject({ input: 5, output: 15 });
    expect(Object.keys(c.tiers)).toEqual(['free', 'standard', 'premium']);
  });

  it('with no file, is the demo: a tiered `auto` route over the simulator, and tiers with real limits and budgets', () => {
    const c = loadConfig(undefined);
    expect(c.routes['auto']?.tiers).toEqual({ small: ['sim-small', 'sim-medium'], medium: ['sim-medium', 'sim-large'], large: ['sim-large', 'sim-medium'] });
    expect(c.routes['auto']?.classifier).toBe('builtin');
    for (const tier of ['free', 'standard', 'premium']) {
      const t = c.tiers[tier]!;
      const key = t.limits.key!;
      expect(key.requestsPerMinute, tier).toBeGreaterThan(0);
      expect(key.tokensPerMinute, tier).toBeGreaterThan(0);
      expect(t.budgets.tenant?.dailyUsd, tier).toBeGreaterThan(0);
    }
    // Loading twice gives two configs: the demo defaults are not shared, mutable state.
    loadConfig(undefined).tiers['standard']!.budgets.tenant!.dailyUsd = 123;
    expect(loadConfig(undefined).tiers['standard']!.budgets.tenant!.dailyUsd).toBe(1);
  });

  it('a config file replaces the demo entirely: no `auto` route, tiers without limits unless it says so', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tollgate-cfg-'));
    const file = join(dir, 'tollgate.yaml');
    writeFileSync(file, 'server:\n  port: 9000\n');
    const c = loadConfig(file);
    expect(c.routes).toEqual({});
    expect(Object.keys(c.models)).toEqual(['sim-small', 'sim-medium', 'sim-large', 'sim-embed']);
    for (const t of Object.values(c.tiers)) expect(t).toEqual({ limits: {}, budgets: {} });
    // buildConfig (what tests and embedders of the library call) never adds the demo either.
    expect(buildConfig({}).routes).toEqual({});
  });

  it('names the exact path of a bad URL', () => {
    const p = problems(() =>
      parseConfigText(`providers:\n  openai:\n    kind: openai-compatible\n    baseUrl: not a url\nmodels:\n  m:\n    deployments: [{provider: openai}]\n`),
    );
    expect(p).toEqual(['providers.openai.baseUrl: must be a URL (http:// or https://)']);
  });

  it('names unknown keys, wrong types and enum values', () => {
    const p = problems(() => parseConfigText(`server:\n  port: "eighty"\n  colour: blue\nlogging:\n  level: loud\n`));
    expect(p).toContain("server: unknown key 'colour'");
    expect(p).toContain('server.port: expected number, got string');
    expect(p.some((x) => x.startsWith("logging.level: must be one of 'fatal'"))).toBe(true);
  });

  it('rejects an unknown provider kind by name', () => {
    const p = problems(() => parseConfigText(`providers:\n  x:\n    kind: carrier-pigeon\n`));
    expect(p[0]).toMatch(/^providers\.x\.kind: must be one of 'simulated', 'openai-compatible', 'anthropic'/);
  });

  it('cross-checks deployments, aliases and tiers', () => {
    const p = problems(() =>
      buildConfig({
        providers: { sim: { kind: 'simulated' } },
        models: {
          a: { deployments: [{ provider: 'nope' }], aliases: ['b'] },
          b: { deployments: [{ provider: 'sim' }] },
        },
        tiers: { free: { models: ['zzz'] } },
      }),
    );
    expect(p).toContain("models.a.deployments.0.provider: unknown provider 'nope' (configured: sim)");
    expect(p.some((x) => x.startsWith('models.b'))).toBe(true);
    expect(p).toContain("tiers.free.models.0: unknown model 'zzz'");
  });

  it('cross-checks routes and experiments: names, tiers, rules, models', () => {
    const p = problems(() =>
      buildConfig({
        routes: {
          auto: { tiers: { small: ['sim-small'], large: ['sim-embed'] }, rules: [{ when: { hasTools: true }, tier: 'huge' }] },
          smart: { aliases: ['auto', 'sim-small'], tiers: { only: ['sim-large'] } },
        },
        experiments: { e1: { route: 'nope', variants: [{ name: 'a', weight: 1 }, { name: 'a', weight: 1, params: { stream: true } }] } },
      }),
    );
    expect(p).toContain("routes.auto.tiers.large.0: 'sim-embed' is not a chat model of models");
    expect(p).toContain("routes.auto.rules.0.tier: unknown tier 'huge' (tiers: small, large)");
    expect(p).toContain("routes.smart: 'auto' is already the name or an alias of auto");
    expect(p).toContain("routes.smart: 'sim-small' is already the name or an alias of sim-small");
    expect(p).toContain("experiments.e1.route: unknown route or model 'nope'");
    expect(p).toContain("experiments.e1.variants.1.name: 'a' is used twice");
    expect(p).toContain('experiments.e1.variants.1.params.stream: cannot be set by a variant');
  });

  it('rejects deployments a provider cannot serve', () => {
    const p = problems(() =>
      buildConfig({
        providers: { sim: { kind: 'simulated' }, claude: { kind: 'anthropic' } },
        models: {
          emb: { type: 'embedding', deployments: [{ provider: 'claude' }, { provider: 'sim', model: 'sim-small' }] },
          chat: { deployments: [{ provider: 'sim', model: 'sim-huge' }] },
        },
      }),
    );
    expect(p).toContain("models.emb.deployments.0.provider: 'claude' is an anthropic provider, which serves no embeddings");
    expect(p).toContain("models.emb.deployments.1.model: 'sim-small' is a simulated chat model, but model emb has type embedding");
    expect(p[2]).toMatch(/^models\.chat\.deployments\.0\.model: the simulator 'sim' has no model 'sim-huge'/);
  });

  it('rejects simulator fault rates that add up to more than 1', () => {
    const p = problems(() => buildConfig({ providers: { sim: { kind: 'simulated', faults: { errorRate: { '500': 0.7 }, hangRate: 0.5 } } } }));
    expect(p[0]).toMatch(/^providers\.sim\.faults: the fault rates .* add up to more than 1/);
  });

  it('requires models when no simulator is configured', () => {
    const p = problems(() => buildConfig({ providers: { o: { kind: 'openai-compatible', baseUrl: 'http://127.0.0.1:1/v1' } } }));
    expect(p).toEqual(['models: is required when no simulated provider is configured']);
  });

  it('interpolates ${ENV} and ${ENV:-default}, and names a missing variable', () => {
    const c = parseConfigText(
      `providers:\n  o:\n    kind: openai-compatible\n    baseUrl: \${BASE:-http://127.0.0.1:9/v1}\n    apiKey: \${KEY}\nmodels:\n  m:\n    deployments: [{provider: o}]\n`,
      { KEY: 'sk-secret' },
    );
    const o = c.providers['o'];
    expect(o?.kind === 'openai-compatible' && o.apiKey).toBe('sk-secret');
    expect(o?.kind === 'openai-compatible' && o.baseUrl).toBe('http://127.0.0.1:9/v1');
    expect(problems(() => parseConfigText(`server:\n  host: \${NOPE}\n`, {}))).toEqual(['server.host: environment variable NOPE is not set']);
    expect(interpolateEnv({ a: ['x${A}y'] }, { A: '1' })).toEqual({ a: ['x1y'] });
  });

  it('reports YAML syntax errors and unreadable files', () => {
    expect(problems(() => parseConfigText('server: [unclosed'))[0]).toMatch(/^\(yaml\):/);
    expect(problems(() => loadConfig('/nonexistent/tollgate.yaml'))[0]).toMatch(/cannot read .*ENOENT/);
  });

  it('loads the shipped example config', () => {
    const c = loadConfig(join(process.cwd(), 'tollgate.example.yaml'), { OPENAI_API_KEY: 'sk-x', ANTHROPIC_API_KEY: 'a-x' });
    expect(Object.keys(c.providers).length).toBeGreaterThan(1);
  });

  it('reads a file from disk', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tg-cfg-'));
    const file = join(dir, 'tollgate.yaml');
    writeFileSync(file, 'server:\n  port: 9999\n');
    expect(loadConfig(file).server.port).toBe(9999);
  });
});
