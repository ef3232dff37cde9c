import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { GatewayError } from '../errors.js';
import { RecordConflict, RecordNotFound } from '../storage/types.js';
import { FlagService, type FlagInput, mergeEffects } from './flags.js';
import type { Flag, FlagAuditEntry, FlagEffect, FlagPatch, FlagStore, NewFlag, Requester } from './types.js';

/** A FlagStore in memory (the SQL adapters have their own contract suite). */
class MemoryFlagStore implements FlagStore {
  readonly flags = new Map<string, Flag>();
  readonly trail: FlagAuditEntry[] = [];
  failing = false;
  #copy = <T>(v: T): T => structuredClone(v);

  async list(): Promise<Flag[]> {
    if (this.failing) throw new Error('store down');
    return [...this.flags.values()].sort((a, b) => (a.name < b.name ? -1 : 1)).map(this.#copy);
  }
  async get(name: string): Promise<Flag | null> {
    const f = this.flags.get(name);
    return f ? this.#copy(f) : null;
  }
  async create(flag: NewFlag, actor: string): Promise<Flag> {
    if (this.flags.has(flag.name)) throw new RecordConflict(`flag '${flag.name}' already exists`);
    const f: Flag = { ...this.#copy(flag), createdAt: Date.now(), updatedAt: Date.now(), updatedBy: actor };
    this.flags.set(f.name, f);
    this.#audit(f.name, 'create', null, f, actor);
    return this.#copy(f);
  }
  async update(name: string, patch: FlagPatch, actor: string): Promise<Flag> {
    const before = this.flags.get(name);
    if (!before) throw new RecordNotFound('flag', name);
    const after: Flag = { ...before, ...this.#copy(patch), updatedAt: Date.now(), updatedBy: actor };
    this.flags.set(name, after);
    this.#audit(name, 'update', before, after, actor);
    return this.#copy(after);
  }
  async delete(name: string, actor: string): Promise<void> {
    const before = this.flags.get(name);
    if (!before) throw new RecordNotFound('flag', name);
    this.flags.delete(name);
    this.#audit(name, 'delete', before, null, actor);
  }
  async audit(opts: { flag?: string; limit?: number; beforeId?: number } = {}): Promise<FlagAuditEntry[]> {
    return this.trail
      .filter((e) => (opts.flag === undefined || e.flag === opts.flag) && (opts.beforeId === undefined || e.id < opts.beforeId))
      .reverse()
      .slice(0, opts.limit ?? 100);
  }
  #audit(flag: string, action: FlagAuditEntry['action'], before: Flag | null, after: Flag | null, actor: string): void {
    this.trail.push({ id: this.trail.length + 1, flag, action, before: this.#copy(before), after: this.#copy(after), actor, at: Date.now() });
  }
}

const ROUTES: Record<string, string[]> = { auto: ['small', 'large'] };
const MODELS = new Set(['sim-small', 'sim-large', 'sim-backup', 'small-alias']);

function service(store: FlagStore = new MemoryFlagStore(), extra: Partial<ConstructorParameters<typeof FlagService>[0]> = {}) {
  return new FlagService({
    store,
    refreshMs: 60_000,
    knownRoutes: (n) => n in ROUTES,
    knownModel: (n) => MODELS.has(n),
    tierNamesOf: (r) => ROUTES[r],
    ...extra,
  });
}

const who = (over: Partial<Requester> = {}): Requester => ({ tenantId: 'ten_a', tier: 'standard', keyId: 'key_1', userId: 'user-1', ...over });
const flag = (name: string, over: Partial<FlagInput> = {}): FlagInput => ({ name, effect: { route: 'auto', model: 'sim-large' }, ...over });

/** The GatewayError a call rejects with, as {code, param}. */
async function rejection(p: Promise<unknown>): Promise<{ code: string; param: string | null; message: string }> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(GatewayError);
  const g = err as GatewayError;
  return { code: g.code, param: g.param, message: g.message };
}

describe('FlagService: targeting', () => {
  let flags: FlagService;
  beforeEach(() => {
    flags = service();
  });

  it('applies a flag without targeting to everyone on its route, and to nobody elsewhere', async () => {
    await flags.create(flag('all'), 'key_admin');
    expect(flags.effectsFor('auto', who())).toEqual([{ route: 'auto', model: 'sim-large' }]);
    expect(flags.effectsFor('auto', who({ tenantId: 'x', keyId: 'y', userId: null, tier: 'free' }))).toHaveLength(1);
    expect(flags.effectsFor('sim-small', who())).toEqual([]);
  });

  it('matches every list given (AND across fields, any entry within a list)', async () => {
    await flags.create(flag('t', { targeting: { tenants: ['ten_a', 'ten_b'], tiers: ['premium'] } }), 'cli');
    expect(flags.effectsFor('auto', who({ tier: 'premium' }))).toHaveLength(1);
    expect(flags.effectsFor('auto', who({ tenantId: 'ten_b', tier: 'premium' }))).toHaveLength(1);
    expect(flags.effectsFor('auto', who({ tier: 'standard' }))).toHaveLength(0);
    expect(flags.effectsFor('auto', who({ tenantId: 'ten_c', tier: 'premium' }))).toHaveLength(0);
  });

  it('targets keys and end users; a request without an end user is not in a users list', async () => {
    await flags.create(flag('k', { targeting: { keys: ['key_9'] } }), 'cli');
    await flags.create(flag('u', { targeting: { users: ['alice'] }, effect: { route: 'auto', cacheMode: 'off' } }), 'cli');
    expect(flags.effectsFor('auto', who({ keyId: 'key_9', userId: null }))).toEqual([{ route: 'auto', model: 'sim-large' }]);
    expect(flags.effectsFor('auto', who({ userId: 'alice' }))).toEqual([{ route: 'auto', cacheMode: 'off' }]);
    expect(flags.effectsFor('auto', who({ userId: null }))).toEqual([]);
  });

  it('treats an empty list as no constraint', async () => {
    await flags.create(flag('e', { targeting: { tenants: [] } }), 'cli');
    expect((await flags.get('e'))?.targeting).toEqual({});
    expect(flags.effectsFor('auto', who({ tenantId: 'anyone' }))).toHaveLength(1);
  });

  it('returns the effects ordered by flag name, whatever the creation order', async () => {
    await flags.create(flag('c-third', { effect: { route: 'auto', cacheMode: 'always' } }), 'cli');
    await flags.create(flag('a-first', { effect: { route: 'auto', model: 'sim-small' } }), 'cli');
    await flags.create(flag('B-before-lower-case', { effect: { route: 'auto', model: 'sim-backup' } }), 'cli');
    expect(flags.effectsFor('auto', who()).map((e) => e.model ?? e.cacheMode)).toEqual(['sim-backup', 'sim-small', 'always']);
  });

  it('ignores a disabled flag until it is enabled; a deleted one stops at once', async () => {
    await flags.create(flag('off', { enabled: false }), 'cli');
    expect(flags.effectsFor('auto', who())).toEqual([]);
    await flags.setEnabled('off', true, 'cli');
    expect(flags.effectsFor('auto', who())).toHaveLength(1);
    await flags.delete('off', 'cli');
    expect(flags.effectsFor('auto', who())).toEqual([]);
  });

  it('0% reaches nobody, 100% everybody; the bucket is the end user, else the key', async () => {
    await flags.create(flag('none', { targeting: { percentage: 0 } }), 'cli');
    expect(flags.effectsFor('auto', who())).toEqual([]);
    await flags.update('none', { targeting: { percentage: 100 } }, 'cli');
    expect(flags.effectsFor('auto', who())).toHaveLength(1);

    await flags.update('none', { targeting: { percentage: 50 } }, 'cli');
    for (let i = 0; i < 200; i++) {
      // The same user gets the same answer through any key; without a user, each key is its own bucket.
      const viaA = flags.effectsFor('auto', who({ userId: `u${i}`, keyId: 'key_a' })).length;
      expect(flags.effectsFor('auto', who({ userId: `u${i}`, keyId: 'key_b' })).length).toBe(viaA);
      expect(flags.effectsFor('auto', who({ userId: null, keyId: `u${i}` })).length).toBe(viaA);
    }
  });

  it('hands out frozen effects that cannot change the snapshot', async () => {
    await flags.create(flag('f'), 'cli');
    const [effect] = flags.effectsFor('auto', who()) as [FlagEffect];
    expect(() => {
      (effect as { model?: string }).model = 'evil';
    }).toThrow(TypeError);
    expect(() => flags.effectsFor('nothing-here', who()).push(effect)).toThrow(TypeError);
    expect(flags.effectsFor('auto', who())[0]?.model).toBe('sim-large');
  });
});

describe('mergeEffects', () => {
  it('gives {} for no effects', () => {
    expect(mergeEffects([])).toEqual({});
  });

  it('takes each field from the first effect that sets it (flags come ordered by name)', () => {
    const tiersA = { small: ['sim-backup'] };
    const merged = mergeEffects([
      { route: 'auto', cacheMode: 'off' },
      { route: 'auto', model: 'sim-large', tiers: tiersA },
      { route: 'auto', model: 'sim-small', tiers: { large: ['sim-small'] }, cacheMode: 'always' },
    ]);
    expect(merged).toEqual({ model: 'sim-large', tiers: tiersA, cacheMode: 'off' });
  });

  it('does not combine two tier mappings: the first one wins whole', () => {
    expect(mergeEffects([{ route: 'auto', tiers: { small: ['a'] } }, { route: 'auto', tiers: { large: ['b'] } }]).tiers).toEqual({ small: ['a'] });
  });

  it('works on what effectsFor returns', async () => {
    const flags = service();
    await flags.create(flag('a-cache', { effect: { route: 'auto', cacheMode: 'off' } }), 'cli');
    await flags.create(flag('b-model', { effect: { route: 'auto', model: 'sim-small' } }), 'cli');
    await flags.create(flag('c-model', { effect: { route: 'auto', model: 'sim-large' } }), 'cli');
    expect(mergeEffects(flags.effectsFor('auto', who()))).toEqual({ cacheMode: 'off', model: 'sim-small' });
  });
});

describe('FlagService: validation', () => {
  let flags: FlagService;
  beforeEach(() => {
    flags = service();
  });

  it.each([
    ['a name with a space', flag('bad name'), 'invalid_value', 'name'],
    ['a name too long', flag('x'.repeat(65)), 'invalid_value', 'name'],
    ['no name', { effect: { route: 'auto', model: 'sim-large' } } as FlagInput, 'missing_field', 'name'],
    ['a percentage below 0', flag('p', { targeting: { percentage: -1 } }), 'invalid_value', 'targeting.percentage'],
    ['a percentage above 100', flag('p', { targeting: { percentage: 100.5 } }), 'invalid_value', 'targeting.percentage'],
    ['a NaN percentage', flag('p', { targeting: { percentage: Number.NaN } }), 'invalid_value', 'targeting.percentage'],
    ['a percentage as text', flag('p', { targeting: { percentage: '5' as never } }), 'invalid_type', 'targeting.percentage'],
    ['a tenant list that is not a list', flag('p', { targeting: { tenants: 'ten_a' as never } }), 'invalid_type', 'targeting.tenants'],
    ['an empty user id', flag('p', { targeting: { users: ['ok', ''] } }), 'invalid_value', 'targeting.users[1]'],
    ['no effect', { name: 'p' } as FlagInput, 'missing_field', 'effect'],
    ['no route', flag('p', { effect: { model: 'sim-large' } as FlagEffect }), 'missing_field', 'effect.route'],
    ['an unknown route', flag('p', { effect: { route: 'nope', model: 'sim-large' } }), 'invalid_value', 'effect.route'],
    ['an unknown model', flag('p', { effect: { route: 'auto', model: 'gpt-9' } }), 'invalid_value', 'effect.model'],
    ['tiers on a model', flag('p', { effect: { route: 'sim-small', tiers: { small: ['sim-large'] } } }), 'invalid_value', 'effect.tiers'],
    ['a tier the route does not have', flag('p', { effect: { route: 'auto', tiers: { xl: ['sim-large'] } } }), 'invalid_value', 'effect.tiers.xl'],
    ['an unknown model in a tier', flag('p', { effect: { route: 'auto', tiers: { small: ['sim-small', 'gpt-9'] } } }), 'invalid_value', 'effect.tiers.small[1]'],
    ['an empty tier', flag('p', { effect: { route: 'auto', tiers: { small: [] } } }), 'invalid_value', 'effect.tiers.small'],
    ['an empty tier mapping', flag('p', { effect: { route: 'auto', tiers: {} } }), 'invalid_value', 'effect.tiers'],
    ['an unknown cache mode', flag('p', { effect: { route: 'auto', cacheMode: 'sometimes' as never } }), 'invalid_value', 'effect.cache_mode'],
    ['an effect that changes nothing', flag('p', { effect: { route: 'auto' } }), 'invalid_value', 'effect'],
    ['a description too long', flag('p', { description: 'x'.repeat(501) }), 'invalid_value', 'description'],
    ['enabled as text', flag('p', { enabled: 'yes' as never }), 'invalid_type', 'enabled'],
  ])('refuses %s, naming the field', async (_what, input, code, param) => {
    const err = await rejection(flags.create(input, 'cli'));
    expect(err).toMatchObject({ code, param });
    expect(err.message).toContain(param.replace(/\[\d+\]$/, ''));
    expect(await flags.list()).toEqual([]);
  });

  it('accepts a model as the route, a partial tier mapping, and every cache mode', async () => {
    await flags.create(flag('m', { effect: { route: 'sim-small', model: 'sim-large' } }), 'cli');
    await flags.create(flag('t', { effect: { route: 'auto', tiers: { large: ['sim-large', 'sim-backup'] } } }), 'cli');
    for (const mode of ['deterministic', 'always', 'off'] as const) {
      await flags.create(flag(`c-${mode}`, { effect: { route: 'auto', cacheMode: mode } }), 'cli');
    }
    expect(await flags.list()).toHaveLength(5);
  });

  it('defaults: enabled, empty description, everyone; drops unknown members and duplicate ids', async () => {
    const created = await flags.create(
      { name: 'd', targeting: { tenants: ['a', 'a', 'b'], extra: 1 } as never, effect: { route: 'auto', model: 'sim-large', junk: true } as never },
      'key_admin',
    );
    expect(created).toMatchObject({ enabled: true, description: '', updatedBy: 'key_admin', targeting: { tenants: ['a', 'b'] } });
    expect(created.effect).toEqual({ route: 'auto', model: 'sim-large' });
  });

  it('stores canonical names when resolveName is given', async () => {
    const canonical = service(new MemoryFlagStore(), {
      knownRoutes: (n) => n === 'auto' || n === 'fast',
      resolveName: (n) => ({ fast: 'auto', 'small-alias': 'sim-small' })[n] ?? n,
    });
    const created = await canonical.create(flag('a', { effect: { route: 'fast', model: 'small-alias', tiers: { small: ['small-alias'] } } }), 'cli');
    expect(created.effect).toEqual({ route: 'auto', model: 'sim-small', tiers: { small: ['sim-small'] } });
    expect(canonical.effectsFor('auto', who())).toHaveLength(1);
  });

  it('lets the store refuse a second flag with the same name', async () => {
    await flags.create(flag('dup'), 'cli');
    await expect(flags.create(flag('dup'), 'cli')).rejects.toBeInstanceOf(RecordConflict);
  });
});

describe('FlagService: updates (merge patch)', () => {
  let store: MemoryFlagStore;
  let flags: FlagService;
  beforeEach(async () => {
    store = new MemoryFlagStore();
    flags = service(store);
    await flags.create(flag('f', { targeting: { tenants: ['ten_a'], percentage: 5 }, effect: { route: 'auto', model: 'sim-large', cacheMode: 'off' } }), 'key_a');
  });

  it('changes the targeting members given and keeps the others; null removes one', async () => {
    expect((await flags.update('f', { targeting: { percentage: 25 } }, 'key_b')).targeting).toEqual({ tenants: ['ten_a'], percentage: 25 });
    expect((await flags.update('f', { targeting: { tenants: null } }, 'key_b')).targeting).toEqual({ percentage: 25 });
    await flags.update('f', { targeting: { users: ['u'] } }, 'key_b');
    expect((await flags.update('f', { targeting: null }, 'key_b')).targeting).toEqual({});
    expect(store.trail.at(-1)).toMatchObject({ action: 'update', actor: 'key_b', after: { targeting: {} } });
  });

  it('changes effect members the same way, and refuses an effect left with nothing to do', async () => {
    expect((await flags.update('f', { effect: { model: null } }, 'cli')).effect).toEqual({ route: 'auto', cacheMode: 'off' });
    expect(await rejection(flags.update('f', { effect: { cacheMode: null } }, 'cli'))).toMatchObject({ code: 'invalid_value', param: 'effect' });
    expect(await rejection(flags.update('f', { effect: { model: 'gpt-9' } }, 'cli'))).toMatchObject({ param: 'effect.model' });
    expect(await rejection(flags.update('f', { targeting: { percentage: 300 } }, 'cli'))).toMatchObject({ param: 'targeting.percentage' });
    expect((await flags.get('f'))?.effect).toEqual({ route: 'auto', cacheMode: 'off' });
  });

  it('re-checks the effect when a flag is enabled, not when it is disabled', async () => {
    await flags.setEnabled('f', false, 'cli');
    store.flags.get('f')!.effect.model = 'gone-from-config';
    expect(await rejection(flags.setEnabled('f', true, 'cli'))).toMatchObject({ param: 'effect.model' });
    await flags.update('f', { effect: { model: 'sim-small' } }, 'cli');
    await expect(flags.setEnabled('f', true, 'cli')).resolves.toMatchObject({ enabled: true });
    await expect(flags.setEnabled('f', false, 'cli')).resolves.toMatchObject({ enabled: false });
  });

  it('throws RecordNotFound for an unknown flag (update and delete)', async () => {
    await expect(flags.update('ghost', { enabled: true }, 'cli')).rejects.toBeInstanceOf(RecordNotFound);
    await expect(flags.delete('ghost', 'cli')).rejects.toBeInstanceOf(RecordNotFound);
  });
});

describe('FlagService: snapshot', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('calls onChange after each change made through it', async () => {
    const onChange = vi.fn();
    const flags = service(undefined, { onChange });
    await flags.create(flag('f'), 'cli');
    await flags.update('f', { enabled: false }, 'cli');
    await flags.delete('f', 'cli');
    expect(onChange).toHaveBeenCalledTimes(3);
    await expect(flags.create(flag('bad name'), 'cli')).rejects.toThrow();
    expect(onChange).toHaveBeenCalledTimes(3);
  });

  it('sees changes made by another process on refresh() and on the poll; keeps the last snapshot when the store fails', async () => {
    vi.useFakeTimers();
    const store = new MemoryFlagStore();
    const other = service(store); // another process on the same store
    const warn = vi.fn();
    const flags = service(store, { refreshMs: 1_000, log: { info: vi.fn(), warn } as never });
    await flags.start();
    expect(flags.effectsFor('auto', who())).toEqual([]);

    await other.create(flag('f'), 'cli');
    expect(flags.effectsFor('auto', who())).toEqual([]); // not yet
    await flags.refresh();
    expect(flags.effectsFor('auto', who())).toHaveLength(1);

    await other.update('f', { effect: { model: 'sim-small' } }, 'cli');
    await vi.advanceTimersByTimeAsync(1_000);
    expect(flags.effectsFor('auto', who())[0]?.model).toBe('sim-small');

    store.failing = true;
    await vi.advanceTimersByTimeAsync(3_000);
    expect(flags.effectsFor('auto', who())[0]?.model).toBe('sim-small');
    expect(warn).toHaveBeenCalledTimes(1); // said once, not every tick
    flags.stop();
  });

  it('never lets a slow, older reload replace a newer snapshot', async () => {
    const store = new MemoryFlagStore();
    const flags = service(store);
    let release: () => void = () => {};
    const realList = store.list.bind(store);
    const slow = vi.spyOn(store, 'list').mockImplementationOnce(async () => {
      const stale = await realList(); // read before the create below
      await new Promise<void>((r) => (release = r));
      return stale;
    });
    const first = flags.refresh();
    await flags.create(flag('f'), 'cli'); // its own refresh reads the new state
    release();
    await first;
    expect(flags.effectsFor('auto', who())).toHaveLength(1);
    slow.mockRestore();
  });
});

describe('FlagService: sticky percentage rollouts (100,000 ids)', () => {
  const N = 100_000;
  const ids = Array.from({ length: N }, (_, i) => `user-${i}`);

  async function inside(flags: FlagService, route = 'auto'): Promise<Set<string>> {
    const out = new Set<string>();
    for (const id of ids) if (flags.effectsFor(route, who({ userId: id })).length > 0) out.add(id);
    return out;
  }

  it('keeps every user of the 5% inside when the rollout is raised to 25%, and each share is within ±1%', async () => {
    const flags = service();
    await flags.create(flag('rollout', { targeting: { percentage: 5 } }), 'cli');
    const at5 = await inside(flags);
    await flags.update('rollout', { targeting: { percentage: 25 } }, 'cli');
    const at25 = await inside(flags);
    await flags.update('rollout', { targeting: { percentage: 50 } }, 'cli');
    const at50 = await inside(flags);

    for (const [set, target] of [[at5, 5], [at25, 25], [at50, 50]] as const) {
      expect(Math.abs((set.size / N) * 100 - target)).toBeLessThanOrEqual(1);
    }
    expect([...at5].filter((id) => !at25.has(id))).toEqual([]);
    expect([...at25].filter((id) => !at50.has(id))).toEqual([]);
  });

  it('buckets two flags independently: the overlap of 5% and 25% is about 1.25%', async () => {
    const flags = service();
    await flags.create(flag('first', { targeting: { percentage: 5 } }), 'cli');
    await flags.create(flag('second', { targeting: { percentage: 25 }, effect: { route: 'sim-small', model: 'sim-large' } }), 'cli');
    const a = await inside(flags, 'auto');
    const b = await inside(flags, 'sim-small');
    const both = [...a].filter((id) => b.has(id)).length;
    expect(Math.abs((both / N) * 100 - 1.25)).toBeLessThanOrEqual(0.25);
    // And the second flag's share among the first flag's users is its own 25%, not 100% or 0%.
    expect(Math.abs((both / a.size) * 100 - 25)).toBeLessThanOrEqual(2.5);
  });
});
