/**
 * Builds one Provider per entry of `providers` in config. Adapters share the Provider contract
 * (./types.ts); the rest of the gateway never sees which wire protocol is behind a deployment.
 */
import type { Config, ProviderConfig } from '../config/schema.js';
import { AnthropicProvider } from './anthropic/provider.js';
import { OpenAICompatibleProvider } from './openai-compatible/provider.js';
import { SimulatedProvider } from './simulated/provider.js';
import type { Provider } from './types.js';

export function createProvider(id: string, cfg: ProviderConfig): Provider {
  switch (cfg.kind) {
    case 'simulated':
      return new SimulatedProvider(id, cfg);
    case 'openai-compatible':
      return new OpenAICompatibleProvider(id, cfg);
    case 'anthropic':
      return new AnthropicProvider(id, cfg);
  }
}

export class ProviderRegistry {
  private readonly providers = new Map<string, Provider>();

  constructor(config: Pick<Config, 'providers'>) {
    for (const [id, cfg] of Object.entries(config.providers)) this.providers.set(id, createProvider(id, cfg));
  }

  get(id: string): Provider {
    const p = this.providers.get(id);
    if (!p) throw new Error(`provider '${id}' is not configured`);
    return p;
  }

  all(): Provider[] {
    return [...this.providers.values()];
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.all().map((p) => p.close()));
  }
}
