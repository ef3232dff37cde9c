/**
 * The job workers' per-provider slots (`jobs.providerConcurrency`): which provider a job's model
 * counts against (its first deployment's), how many jobs run per provider in this process, and
 * what a claim must leave in the queue so that no provider passes its limit.
 */
import type { JobsConfig } from '../config/jobs-schema.js';
import type { ModelCatalog } from '../routing/catalog.js';
import type { Router } from '../routing/router.js';

export class ProviderSlots {
  private readonly perProvider = new Map<string, number>();
  private readonly modelsByProvider = new Map<string, string[]>();
  private readonly providerOf = new Map<string, string>();

  constructor(
    private readonly config: Pick<JobsConfig, 'providerConcurrency'>,
    private readonly catalog: ModelCatalog,
    private readonly router: Pick<Router, 'resolve'> | undefined,
  ) {
    for (const m of catalog.list()) this.mapModel(m.name, m.deployments[0]?.providerId);
  }

  private mapModel(model: string, provider: string | undefined): void {
    if (provider === undefined) return;
    this.providerOf.set(model, provider);
    const list = this.modelsByProvider.get(provider) ?? [];
    list.push(model);
    this.modelsByProvider.set(provider, list);
  }

  /** The provider a job's slot counts against: its model's first deployment's. */
  provider(model: string): string | undefined {
    const known = this.providerOf.get(model);
    if (known !== undefined) return known;
    const direct = this.catalog.resolve(model)?.deployments[0]?.providerId;
    if (direct !== undefined) return direct;
    return this.router?.resolve(model)?.tiers[0]?.deployments[0]?.providerId;
  }

  /** A job of this provider started running here. */
  take(provider: string | undefined): void {
    if (provider !== undefined) this.perProvider.set(provider, (this.perProvider.get(provider) ?? 0) + 1);
  }

  /** A job of this provider stopped running here. */
  release(provider: string | undefined): void {
    if (provider !== undefined) this.perProvider.set(provider, (this.perProvider.get(provider) ?? 1) - 1);
  }

  /**
   * The most jobs one claim may take so that no provider passes its limit whichever jobs come:
   * the smallest number of free slots among providers that still have some.
   */
  headroom(): number {
    const limit = this.config.providerConcurrency;
    if (limit === 0) return Infinity;
    let least = limit;
    for (const n of this.perProvider.values()) if (n < limit) least = Math.min(least, limit - n);
    return least;
  }

  /** Models whose provider has no free slot in this process (left in the queue). */
  saturatedModels(): string[] | undefined {
    const limit = this.config.providerConcurrency;
    if (limit === 0) return undefined;
    const out: string[] = [];
    for (const [provider, n] of this.perProvider) if (n >= limit) out.push(...(this.modelsByProvider.get(provider) ?? []));
    return out.length ? out : undefined;
  }
}
