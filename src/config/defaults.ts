/**
 * What a config file leaves out: the built-in simulator, its models and prices, and the default
 * tiers. With no config file at all, `tollgate start` serves these offline, plus the demo of
 * {@link ZERO_CONFIG}: a tiered `auto` route and tiers with real limits and budgets.
 */
import type { ModelConfig, ProviderConfig, RawConfig, SimModelConfig, TierConfig } from './schema.js';

/**
 * A simulated model: its time to first token (median and 95th percentile, ms), its streaming
 * speed (tokens per second) and the length of its answers (min and max tokens).
 */
function simModel(type: SimModelConfig['type'], [median, p95]: [number, number], tokensPerSecond: number, [min, max]: [number, number]): SimModelConfig {
  return { type, ttftMs: { median, p95 }, tokensPerSecond, outputTokens: { min, max }, dimensions: 256 };
}

/** The simulator's built-in models: a small, a medium and a large chat model and an embedder. */
export const DEFAULT_SIM_MODELS: Record<string, SimModelConfig> = {
  'sim-small': simModel('chat', [120, 300], 150, [12, 60]),
  'sim-medium': simModel('chat', [250, 600], 90, [24, 120]),
  'sim-large': simModel('chat', [450, 1200], 50, [40, 200]),
  'sim-embed': simModel('embedding', [15, 40], 0, [0, 0]),
};

/** Prices (USD per million tokens) of the simulator's models, shaped like real small/medium/large models. */
export const DEFAULT_SIM_PRICES: Record<string, { input: number; output: number; cachedInput: number }> = {
  'sim-small': { input: 0.15, output: 0.6, cachedInput: 0.075 },
  'sim-medium': { input: 1.0, output: 4.0, cachedInput: 0.5 },
  'sim-large': { input: 5.0, output: 15.0, cachedInput: 2.5 },
  'sim-embed': { input: 0.02, output: 0, cachedInput: 0.02 },
};

export const DEFAULT_PROVIDER_ID = 'sim';

export function defaultProviders(): Record<string, ProviderConfig> {
  return { [DEFAULT_PROVIDER_ID]: { kind: 'simulated', faults: { errorRate: {}, retryAfterSeconds: 1, hangRate: 0, resetRate: 0, midStreamBreakRate: 0 } } };
}

/** One public model per simulated model, each a one-deployment chain on the given provider. */
export function defaultModels(providerId: string = DEFAULT_PROVIDER_ID): Record<string, ModelConfig> {
  const models: Record<string, ModelConfig> = {};
  for (const [name, m] of Object.entries(DEFAULT_SIM_MODELS)) {
    models[name] = {
      type: m.type,
      deployments: [{ provider: providerId, model: name }],
      aliases: [],
      price: DEFAULT_SIM_PRICES[name],
      ownedBy: 'tollgate-sim',
    };
  }
  return models;
}

/** Default tiers: no model restrictions, limits or budgets until configured. */
export function defaultTiers(): Record<string, TierConfig> {
  return { free: { limits: {}, budgets: {} }, standard: { limits: {}, budgets: {} }, premium: { limits: {}, budgets: {} } };
}

/**
 * The config of a gateway started with no config file at all (`npm start` on a fresh clone): the
 * product as a demo, on the simulator. `auto` is a tiered route (cache, then the classifier picks
 * sim-small, sim-medium or sim-large; each tier falls back to a neighbour; a short or empty answer
 * from a lower tier is asked again one tier up), and every tier has token and request limits and
 * a daily budget per tenant, generous for a demo but real: answers carry `x-ratelimit-*` headers,
 * and a tenant that spends its day's budget gets 402. The demo key's tenant is `standard`.
 *
 * A config file replaces all of this: none of it applies once a tollgate.yaml (or --config, or
 * $TOLLGATE_CONFIG) is given; what that file leaves out gets the plain defaults above (no routes,
 * tiers without limits).
 */
export const ZERO_CONFIG: RawConfig = {
  routes: {
    auto: {
      tiers: {
        small: ['sim-small', 'sim-medium'],
        medium: ['sim-medium', 'sim-large'],
        large: ['sim-large', 'sim-medium'],
      },
      classifier: 'builtin',
      escalate: { on: ['empty', 'length', 'invalid_json'], maxSteps: 1 },
      ownedBy: 'tollgate-demo',
    },
  },
  tiers: {
    free: {
      limits: { key: { requestsPerMinute: 30, tokensPerMinute: 50_000 } },
      budgets: { tenant: { dailyUsd: 0.1 } },
    },
    standard: {
      limits: { tenant: { requestsPerMinute: 600, tokensPerMinute: 1_000_000 }, key: { requestsPerMinute: 300, tokensPerMinute: 500_000 } },
      budgets: { tenant: { dailyUsd: 1 } },
    },
    premium: {
      limits: { tenant: { requestsPerMinute: 6_000, tokensPerMinute: 10_000_000 }, key: { requestsPerMinute: 3_000, tokensPerMinute: 5_000_000 } },
      budgets: { tenant: { dailyUsd: 50 } },
    },
  },
};
