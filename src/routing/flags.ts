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
 * What `create` and `update` take is checked in flag-validation.ts.
 */
import { PolledService } from '../util/polled-snapshot.js';
import type { Logger } from '../observability/logger.js';
import { RecordNotFound } from '../storage/types.js';
import { inRollout } from './bucket.js';
import { dropNulls, invalidType, validDescription, validEffect, validEnabled, validName, validTargeting } from './flag-validation.js';
import type { Flag, FlagAuditEntry, FlagEffect, FlagStore, FlagTargeting, Requester } from './types.js';

export interface FlagServiceOptions {
  store: FlagStore;
  /** Told of each change made through this process, to tell the other processes to reload (src/storage/change-bus.ts). */
  onChange?: (() => void) | undefined;
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

export class FlagService extends PolledService<readonly Flag[], Snapshot> {
  readonly #opts: FlagServiceOptions;

  constructor(opts: FlagServiceOptions) {
    super(
      {
        load: () => opts.store.list(),
        build: buildSnapshot,
        refreshMs: opts.refreshMs,
        what: 'feature flags',
        log: opts.log,
        onChange: opts.onChange,
        logChanges: {
          signature: (s) => s.all.map((f) => `${f.name}@${f.updatedAt}:${f.enabled ? 1 : 0}`).join(','),
          fields: (s) => ({ flags: s.all.filter((f) => f.enabled).map((f) => ({ name: f.name, route: f.effect.route, percentage: f.targeting.percentage ?? 100 })) }),
        },
      },
      buildSnapshot([]),
    );
    this.#opts = opts;
  }

  /* ---------------------------------------- hot path ---------------------------------------- */

  /**
   * The effects of the enabled flags on `route` (a canonical route or model name) whose targeting
   * matches the requester, ordered by flag name. No I/O; allocates only when a flag applies. The
   * result and its effects are shared and frozen: read them, do not change them.
   */
  effectsFor(route: string, requester: Requester): FlagEffect[] {
    const flags = this.snapshot.byRoute.get(route);
    if (flags === undefined) return NO_EFFECTS;
    let out: FlagEffect[] | undefined;
    for (const f of flags) {
      if (matches(f, requester)) (out ??= []).push(f.effect);
    }
    return out ?? NO_EFFECTS;
  }

  /** Every flag in this process's snapshot (enabled or not), by name. */
  active(): readonly Flag[] {
    return this.snapshot.all;
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
    const name = validName(input?.name);
    const created = await this.#opts.store.create(
      {
        name,
        description: validDescription(input.description ?? ''),
        enabled: validEnabled(input.enabled ?? true),
        targeting: validTargeting(input.targeting ?? {}),
        effect: validEffect(input.effect, this.#opts),
      },
      actor,
    );
    await this.refreshAfterChange();
    return created;
  }

  /** Applies a merge patch (see {@link FlagUpdate}) and reloads. Throws the store's `RecordNotFound`. */
  async update(name: string, patch: FlagUpdate, actor: string): Promise<Flag> {
    const current = await this.#opts.store.get(name);
    if (!current) throw new RecordNotFound('flag', name);
    const changes: Parameters<FlagStore['update']>[1] = {};
    if (patch.description !== undefined) changes.description = validDescription(patch.description);
    if (patch.enabled !== undefined) changes.enabled = validEnabled(patch.enabled);
    if (patch.targeting !== undefined) {
      changes.targeting = validTargeting(patch.targeting === null ? {} : dropNulls({ ...current.targeting, ...patch.targeting }));
    }
    if (patch.effect !== undefined || (patch.enabled === true && !current.enabled)) {
      if (patch.effect !== undefined && (patch.effect === null || typeof patch.effect !== 'object')) throw invalidType('effect', 'object');
      // A flag being enabled must still make sense against the current config (a model may be gone).
      changes.effect = validEffect(dropNulls({ ...current.effect, ...(patch.effect ?? {}) }) as FlagEffect, this.#opts);
    }
    const updated = await this.#opts.store.update(name, changes, actor);
    await this.refreshAfterChange();
    return updated;
  }

  /** Turns a flag on or off (an update, audited like any other). */
  setEnabled(name: string, enabled: boolean, actor: string): Promise<Flag> {
    return this.update(name, { enabled }, actor);
  }

  /** Removes a flag and reloads. Throws the store's `RecordNotFound`. */
  async delete(name: string, actor: string): Promise<void> {
    await this.#opts.store.delete(name, actor);
    await this.refreshAfterChange();
  }
}
