/**
 * Tiered routes: a route name (or alias, e.g. `auto`) -> the tier a request needs -> the ordered
 * fallback chain of the tier's models' deployments.
 *
 * Per request (no I/O): features (features.ts) -> the classifier's tier (classifier.ts) -> the
 * route's rules (rules.ts: a fixed tier, or bounds) -> cost-aware availability: a tier whose every
 * deployment has an open circuit breaker (an outage, or a provider refusing with 429s long
 * enough to open it), or whose models are all switched off by kill switches, is skipped for the
 * next tier up that can answer, or, at the top, the next one down; so is a tier whose providers
 * all answered 429 with a Retry-After that has not passed yet. Feature flags may replace the tier
 * mapping or the whole route's model (flags.ts).
 * Escalation (`escalate`) asks the next tier up when an answer fails a check: see escalation.ts.
 */
import type { RouteConfig } from '../config/routing-schema.js';
import type { Price } from '../metering/cost.js';
import type { ChatCompletionRequest } from '../providers/types.js';
import type { BreakerRegistry } from '../resilience/circuit-breaker.js';
import type { CatalogModel, Deployment, ModelCatalog } from './catalog.js';
import { BuiltinClassifier, FixedClassifier } from './classifier.js';
import { extractFeatures } from './features.js';
import { type CompiledRules, applyRules, compileRules } from './rules.js';
import type { Classifier, Requester } from './types.js';

export interface Tier {
  name: string;
  models: CatalogModel[];
  /** The models' deployments, in order. */
  deployments: Deployment[];
}

export interface CompiledRoute {
  name: string;
  config: RouteConfig;
  tiers: Tier[];
  classifier: Classifier;
  rules: CompiledRules;
  /** A synthetic model for the pipeline: the route's name, the highest price of its models (admission reserves the worst case). */
  model: CatalogModel;
}

/** What the router decided for one request. */
export interface RouteDecision {
  route: CompiledRoute;
  /** The tier serving it (after rules and availability), and the one the classifier and rules chose. */
  tier: number;
  chosen: number;
  score: number;
  reasons: string[];
  /** The rule that fixed the tier, if one did. */
  rule: number | null;
  /** Tiers skipped because every deployment's breaker was open. */
  skipped: string[];
  tiers: Tier[];
}

/** The worst case of several prices: each field's highest value (admission reserves with it). */
export function maxPrice(models: readonly CatalogModel[]): Price | undefined {
  let worst: Price | undefined;
  for (const m of models) {
    const p = m.price;
    if (!p) continue;
    if (!worst) {
      worst = { ...p };
      continue;
    }
    worst.input = Math.max(worst.input, p.input);
    worst.output = Math.max(worst.output, p.output);
    if (p.cachedInput !== undefined) worst.cachedInput = Math.max(worst.cachedInput ?? 0, p.cachedInput);
  }
  return worst;
}

export class Router {
  private readonly routes = new Map<string, CompiledRoute>();
  private readonly byName = new Map<string, CompiledRoute>();

  constructor(
    routes: Record<string, RouteConfig>,
    private readonly catalog: ModelCatalog,
    private readonly breakers: Pick<BreakerRegistry, 'get' | 'isRateLimited'>,
    /** Kill switches: a model switched off (or all of whose providers are) is left out of its tier... */
    private readonly modelAvailable: (model: CatalogModel) => boolean = () => true,
    /** ...and so is a deployment on a provider switched off. */
    private readonly providerDisabled: (providerId: string) => boolean = () => false,
  ) {
    for (const [name, config] of Object.entries(routes)) {
      const tierNames = Object.keys(config.tiers);
      const tiers = tierNames.map((t) => this.tier(name, t, config.tiers[t] ?? []));
      const all = tiers.flatMap((t) => t.models);
      const route: CompiledRoute = {
        name,
        config,
        tiers,
        classifier: config.classifier === 'none' ? new FixedClassifier() : new BuiltinClassifier(),
        rules: compileRules(config.rules, tierNames),
        model: { name, type: 'chat', deployments: tiers.flatMap((t) => t.deployments), price: maxPrice(all), ownedBy: config.ownedBy },
      };
      this.routes.set(name, route);
      this.byName.set(name, route);
      for (const alias of config.aliases) this.byName.set(alias, route);
    }
  }

  private tier(route: string, name: string, modelNames: string[]): Tier {
    const models = modelNames.map((m) => {
      const model = this.catalog.resolve(m);
      if (!model) throw new Error(`routes.${route}.tiers.${name}: unknown model '${m}'`);
      return model;
    });
    return { name, models, deployments: models.flatMap((m) => m.deployments) };
  }

  /** The route a name (or alias) points at. */
  resolve(name: string): CompiledRoute | undefined {
    return this.byName.get(name);
  }

  list(): CompiledRoute[] {
    return [...this.routes.values()];
  }

  /** A tier mapping replaced by a flag: tier name -> model names (unknown tiers of the flag are ignored). */
  withTiers(route: CompiledRoute, mapping: Record<string, string[]>): Tier[] {
    return route.tiers.map((t) => (mapping[t.name] ? this.tier(route.name, t.name, mapping[t.name] as string[]) : t));
  }

  /** Picks the tier of a request. Pure but for the breakers' state; microseconds. */
  decide(route: CompiledRoute, body: ChatCompletionRequest, requester: Requester, all: Tier[] = route.tiers): RouteDecision {
    const tiers = all.map((t) => this.live(t));
    const features = extractFeatures(body);
    const c = route.classifier.classify(features, tiers.length);
    const ruled = applyRules(route.rules, features, requester, c.tier);
    const chosen = ruled.tier;
    const skipped: string[] = [];
    let tier = chosen;
    if (!this.available(tiers[chosen] as Tier)) {
      skipped.push((tiers[chosen] as Tier).name);
      tier = -1;
      for (let up = chosen + 1; up < tiers.length && tier < 0; up++) {
        if (this.available(tiers[up] as Tier)) tier = up;
        else skipped.push((tiers[up] as Tier).name);
      }
      for (let down = chosen - 1; down >= 0 && tier < 0; down--) {
        if (this.available(tiers[down] as Tier)) tier = down;
        else skipped.push((tiers[down] as Tier).name);
      }
      if (tier < 0) tier = chosen; // nothing is up: let invoke report the open breakers
    }
    return { route, tier, chosen, score: c.score, reasons: c.reasons, rule: ruled.rule, skipped, tiers };
  }

  /** The tier without its kill-switched models (the same object when none is). */
  private live(tier: Tier): Tier {
    if (tier.models.every(this.modelAvailable) && !tier.deployments.some((d) => this.providerDisabled(d.providerId))) return tier;
    const models = tier.models.filter(this.modelAvailable);
    return { name: tier.name, models, deployments: models.flatMap((m) => m.deployments).filter((d) => !this.providerDisabled(d.providerId)) };
  }

  /** Whether any deployment of the tier may take an attempt now: breaker not open, provider not in a Retry-After window. */
  private available(tier: Tier): boolean {
    return tier.deployments.some((d) => this.breakers.get(d.id).state !== 'open' && !this.breakers.isRateLimited(d.id));
  }

  /** The next tier up that is available, for escalation; undefined at the top. */
  nextTier(decision: RouteDecision): number | undefined {
    for (let up = decision.tier + 1; up < decision.tiers.length; up++) {
      if (this.available(decision.tiers[up] as Tier)) return up;
    }
    return undefined;
  }
}
