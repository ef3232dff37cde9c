/**
 * Kill switches: an operator's way to stop traffic at once, for everything (`global`), a tenant, a
 * key, a model (public name) or a provider (config id). Switches live in `Records`, so every
 * process sharing the store (embedded SQLite or PostgreSQL) sees the same ones.
 *
 * The hot path never does I/O: each process holds a snapshot (one Map per scope) that it reloads
 * from the store every `refreshMs` (config `killSwitches.refreshMs`, default 500 ms), and at once
 * after a change made through it. A switch made by another process therefore takes effect here
 * within `refreshMs` plus one store read. When a reload fails, the last snapshot stays in force.
 *
 * Checks: `checkAccess` (global, tenant, key: 403 access_disabled) and `checkModel` (503
 * model_disabled) run in the kill-switch stage right after authentication; `disabledProvider` is
 * asked by the route stage, which drops that provider's deployments from the chain.
 */
import { PolledService } from '../util/polled-snapshot.js';
import { GatewayError } from '../errors.js';
import type { KillSwitch, KillSwitchScope, Records } from '../storage/types.js';

export const KILL_SWITCH_SCOPES: readonly KillSwitchScope[] = ['global', 'tenant', 'key', 'model', 'provider'];

export interface NewKillSwitchInput {
  scope: string;
  /** Required except for `global`. A model alias is stored as its public name. */
  target?: string;
  reason: string;
  createdBy?: string | null;
}

export interface KillSwitchesOptions {
  records: Pick<Records, 'listKillSwitches' | 'createKillSwitch' | 'deleteKillSwitch' | 'getTenant' | 'getKey'>;
  /** How often the snapshot is reloaded from the store. */
  refreshMs: number;
  /** Told of each change made through this process, to tell the other processes to reload (src/storage/change-bus.ts). */
  onChange?: (() => void) | undefined;
  /** Public name of a model name or alias; undefined when unknown (validates `model` targets). */
  resolveModel: (name: string) => string | undefined;
  /** Configured provider ids (validates `provider` targets). */
  providers: readonly string[];
  log?: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void };
}

interface Snapshot {
  all: readonly KillSwitch[];
  global: KillSwitch | undefined;
  byScope: Record<Exclude<KillSwitchScope, 'global'>, ReadonlyMap<string, KillSwitch>>;
}

function buildSnapshot(list: readonly KillSwitch[]): Snapshot {
  const byScope = { tenant: new Map(), key: new Map(), model: new Map(), provider: new Map() } as Record<
    Exclude<KillSwitchScope, 'global'>,
    Map<string, KillSwitch>
  >;
  let global: KillSwitch | undefined;
  for (const s of list) {
    if (s.scope === 'global') global ??= s;
    else byScope[s.scope]?.set(s.target, s);
  }
  return { all: list, global, byScope };
}

const MAX_REASON = 500;

export class KillSwitches extends PolledService<readonly KillSwitch[], Snapshot> {
  readonly #opts: KillSwitchesOptions;

  constructor(opts: KillSwitchesOptions) {
    super(
      {
        load: () => opts.records.listKillSwitches(),
        build: buildSnapshot,
        refreshMs: opts.refreshMs,
        what: 'kill switches',
        log: opts.log,
        onChange: opts.onChange,
        logChanges: {
          signature: (s) => s.all.map((k) => k.id).join(','),
          fields: (s) => ({ killSwitches: s.all.map((k) => ({ id: k.id, scope: k.scope, target: k.target, reason: k.reason })) }),
        },
      },
      buildSnapshot([]),
    );
    this.#opts = opts;
  }

  /* ---------------------------------------- hot path ---------------------------------------- */

  /** The switches in force in this process (the snapshot). */
  active(): readonly KillSwitch[] {
    return this.snapshot.all;
  }

  /** Throws 403 access_disabled when a global, tenant or key switch covers the caller. */
  checkAccess(caller: { tenantId: string; keyId: string }): void {
    const snap = this.snapshot;
    if (snap.all.length === 0) return;
    if (snap.global) {
      throw new GatewayError('access_disabled', `All requests are disabled by a global kill switch (${snap.global.id}): ${snap.global.reason}`);
    }
    const tenant = snap.byScope.tenant.get(caller.tenantId);
    if (tenant) {
      throw new GatewayError(
        'access_disabled',
        `Requests of tenant '${caller.tenantId}' are disabled by a kill switch (${tenant.id}): ${tenant.reason}`,
      );
    }
    const key = snap.byScope.key.get(caller.keyId);
    if (key) {
      throw new GatewayError('access_disabled', `This API key (${caller.keyId}) is disabled by a kill switch (${key.id}): ${key.reason}`);
    }
  }

  /** Throws 503 model_disabled when a switch covers the model (its public name). */
  checkModel(model: string): void {
    const s = this.snapshot.byScope.model.get(model);
    if (s) throw new GatewayError('model_disabled', `The model '${model}' is disabled by a kill switch (${s.id}): ${s.reason}`, { param: 'model' });
  }

  /** Whether a model can answer: no switch on it, and some deployment on a provider that is not switched off. */
  modelAvailable(model: { name: string; deployments: ReadonlyArray<{ providerId: string }> }): boolean {
    if (this.snapshot.byScope.model.has(model.name)) return false;
    return model.deployments.length === 0 || model.deployments.some((d) => !this.disabledProvider(d.providerId));
  }

  /** The switch that disables a provider, if any. */
  disabledProvider(providerId: string): KillSwitch | undefined {
    const byProvider = this.snapshot.byScope.provider;
    return byProvider.size === 0 ? undefined : byProvider.get(providerId);
  }

  /* --------------------------------------- management --------------------------------------- */

  /** Every switch, read from the store (not the snapshot). */
  list(): Promise<KillSwitch[]> {
    return this.#opts.records.listKillSwitches();
  }

  /**
   * Validates and stores a switch, then reloads the snapshot so it applies in this process at
   * once. Throws 400 GatewayErrors naming the field; the store's `RecordConflict` when the same
   * scope and target is already switched off.
   */
  async create(input: NewKillSwitchInput): Promise<KillSwitch> {
    const { scope, target } = await this.#validate(input);
    const reason = typeof input.reason === 'string' ? input.reason.trim() : '';
    if (!reason) throw new GatewayError('missing_field', "A kill switch needs a 'reason' (shown to the callers it refuses).", { param: 'reason' });
    if (reason.length > MAX_REASON) {
      throw new GatewayError('invalid_value', `'reason' is longer than ${MAX_REASON} characters.`, { param: 'reason' });
    }
    const created = await this.#opts.records.createKillSwitch({ scope, target, reason, createdBy: input.createdBy ?? null });
    await this.refreshAfterChange();
    return created;
  }

  /** Removes (lifts) a switch and reloads the snapshot. Throws the store's `RecordNotFound`. */
  async delete(id: string): Promise<void> {
    await this.#opts.records.deleteKillSwitch(id);
    await this.refreshAfterChange();
  }

  async #validate(input: NewKillSwitchInput): Promise<{ scope: KillSwitchScope; target: string }> {
    const scope = input.scope as KillSwitchScope;
    if (!KILL_SWITCH_SCOPES.includes(scope)) {
      throw new GatewayError('invalid_value', `Invalid value for 'scope': must be one of ${KILL_SWITCH_SCOPES.map((s) => `'${s}'`).join(', ')}.`, {
        param: 'scope',
      });
    }
    const target = (input.target ?? '').trim();
    if (scope === 'global') {
      if (target !== '') throw new GatewayError('invalid_value', "A global kill switch has no 'target'.", { param: 'target' });
      return { scope, target };
    }
    if (target === '') throw new GatewayError('missing_field', `A ${scope} kill switch needs a 'target' (the ${scope} to disable).`, { param: 'target' });
    const unknown = (what: string, extra = '') => new GatewayError('invalid_value', `Unknown ${what} '${target}'${extra}.`, { param: 'target' });
    switch (scope) {
      case 'tenant':
        if (!(await this.#opts.records.getTenant(target))) throw unknown('tenant');
        return { scope, target };
      case 'key':
        if (!(await this.#opts.records.getKey(target))) throw unknown('key id');
        return { scope, target };
      case 'model': {
        const name = this.#opts.resolveModel(target);
        if (!name) throw unknown('model');
        return { scope, target: name };
      }
      case 'provider':
        if (!this.#opts.providers.includes(target)) throw unknown('provider', ` (configured: ${this.#opts.providers.join(', ')})`);
        return { scope, target };
    }
  }
}
