/**
 * A/B experiments (config `experiments`): a route's traffic split between variants (a model, a
 * system prompt, request parameters), sticky per end user. The statistics that compare the
 * variants afterwards are in experiment-stats.ts.
 *
 * Assignment: `pickWeighted(experimentId, id, weights)` where `id` is the end user, or the API key
 * when the request names no user. A pure function of those values: the same user gets the same
 * variant on every call, in every process, after every restart, for as long as the experiment's
 * weights stay the same.
 */
import type { ExperimentConfig } from '../config/routing-schema.js';
import type { ChatCompletionRequest, ChatMessage } from '../providers/types.js';
import { pickWeighted } from './bucket.js';
import type { ExperimentAssignment, Requester } from './types.js';

export type VariantConfig = ExperimentConfig['variants'][number];

/** An experiment of the config, with its id. */
export type Experiment = ExperimentConfig & { id: string };

/** Which variant a request gets; `index` is into the experiment's `variants`. */
export interface Assignment extends ExperimentAssignment {
  index: number;
}

/** Request fields a variant's `params` may not set. */
export const RESERVED_PARAMS: readonly string[] = ['messages', 'model', 'stream', 'stream_options'];

/** Experiment ids: they appear in URLs (/admin/v1/experiments/:id) and in the ledger. */
const EXPERIMENT_ID = /^[A-Za-z0-9_.:-]{1,64}$/;

export interface ExperimentsOptions {
  /**
   * Maps a route or model name (or alias) to its canonical name, so an experiment configured on an
   * alias is found by `forRoute(canonical name)`. Default: names are compared as written.
   */
  resolve?: (name: string) => string | undefined;
}

export class Experiments {
  readonly #byId = new Map<string, Experiment>();
  readonly #byRoute = new Map<string, Experiment>();
  readonly #weights = new Map<string, number[]>();

  /**
   * From the config's `experiments` record. Expects a config that passed {@link Experiments.validate};
   * if two enabled experiments share a route anyway, the first (in config order) wins.
   */
  constructor(experiments: Record<string, ExperimentConfig> = {}, opts: ExperimentsOptions = {}) {
    for (const [id, config] of Object.entries(experiments)) {
      const experiment: Experiment = { ...config, id };
      this.#byId.set(id, experiment);
      this.#weights.set(id, config.variants.map((v) => v.weight));
      if (!config.enabled) continue;
      const names = new Set([config.route, opts.resolve?.(config.route) ?? config.route]);
      for (const name of names) if (!this.#byRoute.has(name)) this.#byRoute.set(name, experiment);
    }
  }

  /** Every experiment of the config (enabled or not), in config order. */
  list(): Experiment[] {
    return [...this.#byId.values()];
  }

  get(id: string): Experiment | undefined {
    return this.#byId.get(id);
  }

  /** The enabled experiment on this route or model name, if any. */
  forRoute(route: string): Experiment | undefined {
    return this.#byRoute.get(route);
  }

  /**
   * The variant of `experimentId` for this requester: sticky per end user (or per key without
   * one). A disabled experiment gives everyone the control (the first variant). Throws for an
   * unknown id.
   */
  assign(experimentId: string, requester: Requester): Assignment {
    const experiment = this.#byId.get(experimentId);
    const weights = this.#weights.get(experimentId);
    if (!experiment || !weights) throw new Error(`unknown experiment '${experimentId}'`);
    const index = experiment.enabled ? pickWeighted(experimentId, bucketId(requester), weights) : 0;
    return { experiment: experimentId, variant: (experiment.variants[index] as VariantConfig).name, index };
  }

  /**
   * Problems of the config's experiments, as `experiments.<id>.<path>: <what>` lines (empty when
   * fine). `knownRoute` / `knownModel`: whether a name (or alias) is a route / a public model.
   * Two enabled experiments on one route are a problem; a disabled one may share its route.
   */
  static validate(
    experiments: Record<string, ExperimentConfig>,
    knownRoute: (name: string) => boolean,
    knownModel: (name: string) => boolean,
  ): string[] {
    const problems: string[] = [];
    const perRoute = new Map<string, string>();
    for (const [id, e] of Object.entries(experiments)) {
      if (!EXPERIMENT_ID.test(id)) problems.push(`experiments.${id}: the id must be 1-64 characters of letters, digits and _ . : -`);
      if (!knownRoute(e.route) && !knownModel(e.route)) {
        problems.push(`experiments.${id}.route: unknown route or model '${e.route}'`);
      } else if (e.enabled) {
        const other = perRoute.get(e.route);
        if (other !== undefined) problems.push(`experiments.${id}.route: '${e.route}' already has experiment '${other}' (one enabled experiment per route)`);
        else perRoute.set(e.route, id);
      }
      const seen = new Set<string>();
      e.variants.forEach((v, i) => {
        if (seen.has(v.name)) problems.push(`experiments.${id}.variants.${i}.name: duplicate variant name '${v.name}'`);
        seen.add(v.name);
        if (v.model !== undefined && !knownModel(v.model) && !knownRoute(v.model)) {
          problems.push(`experiments.${id}.variants.${i}.model: unknown model '${v.model}'`);
        }
        for (const key of Object.keys(v.params ?? {})) {
          if (RESERVED_PARAMS.includes(key)) {
            problems.push(`experiments.${id}.variants.${i}.params.${key}: cannot be set by a variant (${RESERVED_PARAMS.join(', ')} are the request's own)`);
          }
        }
      });
    }
    return problems;
  }
}

/** Who an assignment sticks to: the end user, else the API key. */
function bucketId(r: Requester): string {
  return r.userId ? r.userId : r.keyId;
}

/**
 * The request as the variant wants it, as a new object (the input and its messages are never
 * changed): `system` replaces the content of the first system or developer message (keeping its
 * role), or is inserted as the first message when there is none; `params` are set over the
 * body's own (deep-copied, so a later stage cannot change the config), except `messages`,
 * `model`, `stream` and `stream_options`, which stay the request's. `model` is not applied here:
 * the route stage serves the request with `variant.model`.
 */
export function applyVariant(body: ChatCompletionRequest, variant: Pick<VariantConfig, 'system' | 'params'>): ChatCompletionRequest {
  const out: ChatCompletionRequest = { ...body };
  for (const [key, value] of Object.entries(variant.params ?? {})) {
    if (RESERVED_PARAMS.includes(key)) continue;
    out[key] = value === undefined ? value : structuredClone(value);
  }
  if (variant.system !== undefined) {
    const messages: ChatMessage[] = [...body.messages];
    const i = messages.findIndex((m) => m.role === 'system' || m.role === 'developer');
    if (i >= 0) messages[i] = { ...(messages[i] as ChatMessage), content: variant.system };
    else messages.unshift({ role: 'system', content: variant.system });
    out.messages = messages;
  }
  return out;
}
