/**
 * Feature flags: run-time switches that change how requests to a route (or model) are served —
 * another model, another tier mapping, another cache mode — for targeted tenants, keys, end users
 * or customer tiers, optionally for a sticky percentage of them (src/routing/bucket.ts). Flags
 * live in a `FlagStore` with an audit trail; every process sharing the store sees the same ones.
 *
 * The hot path never does I/O: each process holds a snapshot of the enabled flags indexed by
 * `effect.route`, reloaded every `refreshMs` (config `flags.refreshMs`), at once after a change
 * made through this service, and on `refresh()` (called when another process announces a change
 * on the change bus). When a reload fails, the last snapshot stays in force.
 *
 * Evaluation: {@link FlagService.effectsFor} returns the effects of every enabled flag on the
 * route whose targeting matches, ordered by flag name; {@link mergeEffects} folds them into one.
 */
import { PolledSnapshot } from '../util/polled-snapshot.js';
import { GatewayError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import { RecordNotFound } from '../storage/types.js';
import { inRollout } from './bucket.js';
import type { Flag, FlagAuditEntry, FlagEffect, FlagStore, FlagTargeting, Requester } from './types.js';

export interface FlagServiceOptions {
  store: FlagStore;
  /** How often the snapshot is reloaded from the store. */
  refreshMs: number;
  log?: Pick<Logger, 'info' | 'warn'>;
  /** Whether `name` is a configured route (config `routes`; its name, or an alias if resolveName maps aliases). */
  knownRoutes: (name: string) => boolean;
  /** Whether `name` is a public model name (or alias) of the catalog. */
  knownModel: (name: string) => boolean;
  /** The tier names of a route; undefined when `route` is not a tiered route. */
  tierNamesOf: (route: string) => string[] | undefined;
  /**
   * Optional: a route or model name or alias -> its canonical name. When given, `effect.route`
   * and `effect.model` are stored canonical, which is what the route stage passes to
   * `effectsFor` (without it, a flag on an alias matches only requests evaluated under the alias).
   */
  resolveName?: (name: string) => string | undefined;
}

/** What `create` takes: description defaults to '', enabled to true, targeting to {} (everyone). */
export interface FlagInput {
  name: string;
  description?: string;
  enabled?: boolean;
  targeting?: FlagTargeting;
  effect: FlagEffect;
}

/**
 * What `update` takes, with JSON merge-patch semantics (RFC 7396): a member left out keeps its
 * value, `null` removes it; `targeting: null` targets everyone again. Only `effect.route` cannot
 * be removed. The result is validated like a new flag's (the effect when it changes or the flag
 * is enabled).
 */
export interface FlagUpdate {
  description?: string;
  enabled?: boolean;
  targeting?: { [K in keyof FlagTargeting]?: FlagTargeting[K] | null } | null;
  effect?: { route?: string } & { [K in Exclude<keyof FlagEffect, 'route'>]?: FlagEffect[K] | null };
}

/** The fields of the effects of several flags, folded into one. */
export interface MergedEffect {
  model?: string;
  tiers?: Record<string, string[]>;
  cacheMode?: FlagEffect['cacheMode'];
}

export const FLAG_NAME = /^[A-Za-z0-9_.-]{1,64}$/;
export const CACHE_MODES: readonly NonNullable<FlagEffect['cacheMode']>[] = ['deterministic', 'always', 'off'];
const TARGET_LISTS = ['tenants', 'keys', 'users', 'tiers'] as const;
const MAX_DESCRIPTION = 500;
const MAX_LIST = 10_000;
const MAX_ID = 256;

/* ------------------------------------------------------------------------------------------ */
/* Evaluation                                                                                  */
/* ------------------------------------------------------------------------------------------ */

interface CompiledFlag {
  name: string;
  tenants: ReadonlySet<string> | null;
  keys: ReadonlySet<string> | null;
  users: ReadonlySet<string> | null;
  tiers: ReadonlySet<string> | null;
  percentage: number;
  effect: FlagEffect;
}

interface Snapshot {
  /** Every flag of the store (enabled or not), by name. */
  all: readonly Flag[];
  /** Enabled flags by effect.route, each list ordered by flag name. */
  byRoute: ReadonlyMap<string, readonly CompiledFlag[]>;
}

const NO_EFFECTS: FlagEffect[] = Object.freeze([]) as unknown as FlagEffect[];

const setOf = (list: string[] | undefined): ReadonlySet<string> | null => (list && list.length > 0 ? new Set(list) : null);

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

function buildSnapshot(list: readonly Flag[]): Snapshot {
  const byRoute = new Map<string, CompiledFlag[]>();
  const sorted = [...list].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const f of sorted) {
    if (!f.enabled) continue;
    const t = f.targeting ?? {};
    const compiled: CompiledFlag = {
      name: f.name,
      tenants: setOf(t.tenants),
      keys: setOf(t.keys),
      users: setOf(t.users),
      tiers: setOf(t.tiers),
      percentage: t.percentage ?? 100,
      effect: deepFreeze(structuredClone(f.effect)),
    };
    const forRoute = byRoute.get(f.effect.route);
    if (forRoute) forRoute.push(compiled);
    else byRoute.set(f.effect.route, [compiled]);
  }
  return { all: sorted, byRoute };
}

function matches(f: CompiledFlag, r: Requester): boolean {
  if (f.tenants !== null && !f.tenants.has(r.tenantId)) return false;
  if (f.keys !== null && !f.keys.has(r.keyId)) return false;
  if (f.users !== null && (r.userId === null || !f.users.has(r.userId))) return false;
  if (f.tiers !== null && !f.tiers.has(r.tier)) return false;
  return f.percentage >= 100 || inRollout(f.name, r.userId ?? r.keyId, f.percentage);
}

/**
 * Folds the effects of the flags that apply to a request into one. The effects come ordered by
 * flag name (as `effectsFor` returns them); for each field (`model`, `tiers`, `cacheMode`) the
 * first flag that sets it wins, as a whole (two flags' tier mappings are not combined). So
 * `a-canary` setting the model and `b-nocache` setting the cache mode both apply, while of two
 * flags setting the model only the first by name does. When both `model` and `tiers` are set, the
 * model wins in the route stage (the request is served by that model, not the route's tiers).
 */
export function mergeEffects(effects: readonly FlagEffect[]): MergedEffect {
  const out: MergedEffect = {};
  for (const e of effects) {
    if (out.model === undefined && e.model !== undefined) out.model = e.model;
    if (out.tiers === undefined && e.tiers !== undefined) out.tiers = e.tiers;
    if (out.cacheMode === undefined && e.cacheMode !== undefined) out.cacheMode = e.cacheMode;
  }
  return out;
}

/* ------------------------------------------------------------------------------------------ */
/* The service                                                                                 */
/* ------------------------------------------------------------------------------------------ */

export class FlagService {
  readonly #opts: FlagServiceOptions;
  readonly #polled: PolledSnapshot<readonly Flag[], Snapshot>;

  /** Set by the composition root: tells the other processes to reload (publishes `{kind: 'flags'}`). */
  onChange: (() => void) | undefined;

  constructor(opts: FlagServiceOptions) {
    this.#opts = opts;
    this.#polled = new PolledSnapshot<readonly Flag[], Snapshot>(
      {
        load: () => opts.store.list(),
        build: buildSnapshot,
        refreshMs: opts.refreshMs,
        what: 'feature flags',
        log: opts.log,
        onReload: (before, after) => {
          if (opts.log && signature(before.all) !== signature(after.all)) {
            opts.log.info(
              { flags: after.all.filter((f) => f.enabled).map((f) => ({ name: f.name, route: f.effect.route, percentage: f.targeting.percentage ?? 100 })) },
              'feature flags changed',
            );
          }
        },
      },
      buildSnapshot([]),
    );
  }

  get #snapshot(): Snapshot {
    return this.#polled.current;
  }

  /** Loads, then keeps reloading every `refreshMs` until {@link stop}. */
  start(): Promise<void> {
    return this.#polled.start();
  }

  stop(): void {
    this.#polled.stop();
  }

  /** Reloads the snapshot from the store now. */
  refresh(): Promise<void> {
    return this.#polled.refresh();
  }

  /* ---------------------------------------- hot path ---------------------------------------- */

  /**
   * The effects of the enabled flags on `route` (a canonical route or model name) whose targeting
   * matches the requester, ordered by flag name. No I/O; allocates only when a flag applies. The
   * result and its effects are shared and frozen: read them, do not change them.
   */
  effectsFor(route: string, requester: Requester): FlagEffect[] {
    const flags = this.#snapshot.byRoute.get(route);
    if (flags === undefined) return NO_EFFECTS;
    let out: FlagEffect[] | undefined;
    for (const f of flags) {
      if (matches(f, requester)) (out ??= []).push(f.effect);
    }
    return out ?? NO_EFFECTS;
  }

  /** Every flag in this process's snapshot (enabled or not), by name. */
  active(): readonly Flag[] {
    return this.#snapshot.all;
  }

  /* --------------------------------------- management --------------------------------------- */

  /** Every flag, read from the store (not the snapshot), by name. */
  list(): Promise<Flag[]> {
    return this.#opts.store.list();
  }

  get(name: string): Promise<Flag | null> {
    return this.#opts.store.get(name);
  }

  /** The audit trail, newest first (see `FlagStore.audit`). */
  audit(opts: { flag?: string; limit?: number; beforeId?: number } = {}): Promise<FlagAuditEntry[]> {
    return this.#opts.store.audit(opts);
  }

  /**
   * Validates and stores a flag, then reloads the snapshot so it applies here at once. Throws 400
   * GatewayErrors naming the field; the store's `RecordConflict` when the name is taken.
   */
  async create(input: FlagInput, actor: string): Promise<Flag> {
    const name = input?.name;
    if (typeof name !== 'string' || name === '') throw new GatewayError('missing_field', "A flag needs a 'name'.", { param: 'name' });
    if (!FLAG_NAME.test(name)) {
      throw new GatewayError('invalid_value', `Invalid value for 'name': '${clip(name)}' must be 1-64 letters, digits, '_', '.' or '-'.`, { param: 'name' });
    }
    const created = await this.#opts.store.create(
      {
        name,
        description: this.#description(input.description ?? ''),
        enabled: this.#enabled(input.enabled ?? true),
        targeting: this.#targeting(input.targeting ?? {}),
        effect: this.#effect(input.effect),
      },
      actor,
    );
    await this.#refreshAfterChange();
    return created;
  }

  /** Applies a merge patch (see {@link FlagUpdate}) and reloads. Throws the store's `RecordNotFound`. */
  async update(name: string, patch: FlagUpdate, actor: string): Promise<Flag> {
    const current = await this.#opts.store.get(name);
    if (!current) throw new RecordNotFound('flag', name);
    const changes: Parameters<FlagStore['update']>[1] = {};
    if (patch.description !== undefined) changes.description = this.#description(patch.description);
    if (patch.enabled !== undefined) changes.enabled = this.#enabled(patch.enabled);
    if (patch.targeting !== undefined) {
      changes.targeting = this.#targeting(patch.targeting === null ? {} : dropNulls({ ...current.targeting, ...patch.targeting }));
    }
    if (patch.effect !== undefined || (patch.enabled === true && !current.enabled)) {
      if (patch.effect !== undefined && (patch.effect === null || typeof patch.effect !== 'object')) {
        throw new GatewayError('invalid_type', "Invalid type for 'effect': expected object.", { param: 'effect' });
      }
      // A flag being enabled must still make sense against the current config (a model may be gone).
      changes.effect = this.#effect(dropNulls({ ...current.effect, ...(patch.effect ?? {}) }) as FlagEffect);
    }
    const updated = await this.#opts.store.update(name, changes, actor);
    await this.#refreshAfterChange();
    return updated;
  }

  /** Turns a flag on or off (an update, audited like any other). */
  setEnabled(name: string, enabled: boolean, actor: string): Promise<Flag> {
    return this.update(name, { enabled }, actor);
  }

  /** Removes a flag and reloads. Throws the store's `RecordNotFound`. */
  async delete(name: string, actor: string): Promise<void> {
    await this.#opts.store.delete(name, actor);
    await this.#refreshAfterChange();
  }

  async #refreshAfterChange(): Promise<void> {
    this.onChange?.();
    try {
      await this.refresh();
    } catch (err) {
      // The change is stored; the next tick picks it up.
      this.#opts.log?.warn({ err }, 'could not reload feature flags after a change');
    }
  }

  /* --------------------------------------- validation --------------------------------------- */

  #description(value: unknown): string {
    if (typeof value !== 'string') throw invalidType('description', 'string');
    if (value.length > MAX_DESCRIPTION) throw invalid('description', `longer than ${MAX_DESCRIPTION} characters`);
    return value;
  }

  #enabled(value: unknown): boolean {
    if (typeof value !== 'boolean') throw invalidType('enabled', 'boolean');
    return value;
  }

  /** A clean copy: lists deduplicated, empty lists dropped (no constraint), unknown members left out. */
  #targeting(value: unknown): FlagTargeting {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) throw invalidType('targeting', 'object');
    const t = value as Record<string, unknown>;
    const out: FlagTargeting = {};
    for (const field of TARGET_LISTS) {
      const list = t[field];
      if (list === undefined || list === null) continue;
      const param = `targeting.${field}`;
      if (!Array.isArray(list)) throw invalidType(param, 'array');
      if (list.length > MAX_LIST) throw invalid(param, `more than ${MAX_LIST} entries`);
      list.forEach((id, i) => {
        if (typeof id !== 'string') throw invalidType(`${param}[${i}]`, 'string');
        if (id === '' || id.length > MAX_ID) throw invalid(`${param}[${i}]`, `must be 1-${MAX_ID} characters`);
      });
      if (list.length > 0) out[field] = [...new Set(list as string[])];
    }
    const percentage = t['percentage'];
    if (percentage !== undefined && percentage !== null) {
      if (typeof percentage !== 'number') throw invalidType('targeting.percentage', 'number');
      if (!Number.isFinite(percentage) || percentage < 0 || percentage > 100) throw invalid('targeting.percentage', 'must be between 0 and 100');
      out.percentage = percentage;
    }
    return out;
  }

  /** A clean copy with canonical names, checked against the config. */
  #effect(value: unknown): FlagEffect {
    if (value === undefined || value === null) throw new GatewayError('missing_field', "A flag needs an 'effect'.", { param: 'effect' });
    if (typeof value !== 'object' || Array.isArray(value)) throw invalidType('effect', 'object');
    const e = value as Record<string, unknown>;
    const { knownRoutes, knownModel, tierNamesOf } = this.#opts;
    const canonical = (name: string) => this.#opts.resolveName?.(name) ?? name;

    if (e['route'] === undefined || e['route'] === null || e['route'] === '') {
      throw new GatewayError('missing_field', "A flag needs 'effect.route': the route or model whose requests it changes.", { param: 'effect.route' });
    }
    if (typeof e['route'] !== 'string') throw invalidType('effect.route', 'string');
    const given = e['route'];
    if (!knownRoutes(given) && !knownModel(given)) throw invalid('effect.route', `'${clip(given)}' is not a configured route or model`);
    const out: FlagEffect = { route: canonical(given) };

    if (e['model'] !== undefined && e['model'] !== null) {
      if (typeof e['model'] !== 'string') throw invalidType('effect.model', 'string');
      if (!knownModel(e['model'])) throw invalid('effect.model', `'${clip(e['model'])}' is not a configured model`);
      out.model = canonical(e['model']);
    }

    if (e['tiers'] !== undefined && e['tiers'] !== null) {
      const tiers = e['tiers'];
      if (typeof tiers !== 'object' || Array.isArray(tiers)) throw invalidType('effect.tiers', 'object');
      const names = tierNamesOf(out.route);
      if (!names) throw invalid('effect.tiers', `'${clip(given)}' is a model, not a tiered route: it has no tiers to replace`);
      const mapping: Record<string, string[]> = {};
      for (const [tier, models] of Object.entries(tiers as Record<string, unknown>)) {
        const param = `effect.tiers.${tier}`;
        if (!names.includes(tier)) throw invalid(param, `'${clip(tier)}' is not a tier of route '${out.route}' (its tiers: ${names.join(', ')})`);
        if (!Array.isArray(models)) throw invalidType(param, 'array');
        if (models.length === 0) throw invalid(param, 'needs at least one model');
        mapping[tier] = models.map((m: unknown, i) => {
          if (typeof m !== 'string') throw invalidType(`${param}[${i}]`, 'string');
          if (!knownModel(m)) throw invalid(`${param}[${i}]`, `'${clip(m)}' is not a configured model`);
          return canonical(m);
        });
      }
      if (Object.keys(mapping).length === 0) throw invalid('effect.tiers', 'needs at least one tier');
      out.tiers = mapping;
    }

    const cacheMode = e['cacheMode'];
    if (cacheMode !== undefined && cacheMode !== null) {
      if (!CACHE_MODES.includes(cacheMode as never)) {
        throw invalid('effect.cache_mode', `must be one of ${CACHE_MODES.map((m) => `'${m}'`).join(', ')}`);
      }
      out.cacheMode = cacheMode as FlagEffect['cacheMode'];
    }

    if (out.model === undefined && out.tiers === undefined && out.cacheMode === undefined) {
      throw invalid('effect', 'a flag must change something: give effect.model, effect.tiers or effect.cache_mode');
    }
    return out;
  }
}

function invalid(param: string, why: string): GatewayError {
  return new GatewayError('invalid_value', `Invalid value for '${param}': ${why}.`, { param });
}

function invalidType(param: string, expected: string): GatewayError {
  return new GatewayError('invalid_type', `Invalid type for '${param}': expected ${expected}.`, { param });
}


/** A copy without the members set to null (merge-patch removals). */
function dropNulls<T extends object>(value: T): { [K in keyof T]: Exclude<T[K], null> } {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) if (v !== null && v !== undefined) out[k] = v;
  return out as { [K in keyof T]: Exclude<T[K], null> };
}

/** User input quoted in messages, kept short. */
function clip(s: string): string {
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

function signature(list: readonly Flag[]): string {
  return list.map((f) => `${f.name}@${f.updatedAt}:${f.enabled ? 1 : 0}`).join(',');
}
