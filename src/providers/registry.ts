/**
 * Builds one Provider per entry of `providers` in config. Adapters share the Provider contract
 * (./types.ts); the rest of the gateway never sees which wire protocol is behind a deployment.
 */
import type { Config, ProviderConfig } from '../config/schema.js';
import type { Provider } from './types.js';

/** Creates an adapter; its module is loaded only when a provider of that kind is configured. */
export async function createProvider(id: string, cfg: ProviderConfig): Promise<Provider> {
  switch (cfg.kind) {
    case 'simulated':
      return new (await import('./simulated/provider.js')).SimulatedProvider(id, cfg);
    case 'openai-compatible':
      return new (await import('./openai-compatible/provider.js')).OpenAICompatibleProvider(id, cfg);
    case 'anthropic':
      return new (await import('./anthropic/provider.js')).AnthropicProvider(id, cfg);
  }
}

export class ProviderRegistry {
  private constructor(private readonly providers: Map<string, Provider>) {}

  static async create(config: Pick<Config, 'providers'>): Promise<ProviderRegistry> {
    const providers = new Map<string, Provider>();
    for (const [id, cfg] of Object.entries(config.providers)) providers.set(id, await createProvider(id, cfg));
    return new ProviderRegistry(providers);
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
