/**
 * The model catalog: public model names and aliases resolved to their ordered fallback chain of
 * deployments (model @ provider). Built once from config.
 */
import type { Config, ModelConfig } from '../config/schema.js';
import type { Provider } from '../providers/types.js';
import type { ProviderRegistry } from '../providers/registry.js';
import type { Price } from '../metering/cost.js';

export interface Deployment {
  /** `upstreamModel@providerId`, the unit of circuit breaking and metrics. */
  id: string;
  providerId: string;
  provider: Provider;
  upstreamModel: string;
  timeoutMs: number | undefined;
  /** The public model this deployment belongs to, and its price (a tiered route's chain mixes models). */
  model: string;
  price: Price | undefined;
}

export interface CatalogModel {
  /** The public name (what clients send and /v1/models lists). */
  name: string;
  type: ModelConfig['type'];
  deployments: Deployment[];
  price: Price | undefined;
  ownedBy: string;
}

export class ModelCatalog {
  private readonly byName = new Map<string, CatalogModel>();
  private readonly models: CatalogModel[] = [];

  constructor(config: Pick<Config, 'models'>, providers: ProviderRegistry) {
    for (const [name, m] of Object.entries(config.models)) {
      const model: CatalogModel = {
        name,
        type: m.type,
        price: m.price,
        ownedBy: m.ownedBy,
        deployments: m.deployments.map((d) => {
          const upstreamModel = d.model ?? name;
          return {
            id: `${upstreamModel}@${d.provider}`,
            providerId: d.provider,
            provider: providers.get(d.provider),
            upstreamModel,
            timeoutMs: d.timeoutMs,
            model: name,
            price: m.price,
          };
        }),
      };
      this.models.push(model);
      this.byName.set(name, model);
      for (const alias of m.aliases) this.byName.set(alias, model);
    }
  }

  /** A public name or alias → its model; undefined when unknown. */
  resolve(name: string): CatalogModel | undefined {
    return this.byName.get(name);
  }

  list(): readonly CatalogModel[] {
    return this.models;
  }
}
