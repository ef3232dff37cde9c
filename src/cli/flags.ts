/**
 * `tollgate flags list | show | create | update | enable | disable | delete | audit`: feature
 * flags, written directly to the store the config points at, validated against the config's
 * routes and models, audited with the actor `cli`. Running gateways sharing the store apply a
 * change at once when they hear of it on the change bus, else within `flags.refreshMs`.
 */
import type { Config } from '../config/schema.js';
import { flagAuditJson, flagJson } from '../http/routes/flags.js';
import { type FlagInput, FlagService, type FlagUpdate } from '../routing/flags.js';
import type { Flag, FlagAuditEntry, FlagEffect, FlagStore } from '../routing/types.js';
import { type Storage, openStorage } from '../storage/index.js';
import { RecordConflict, RecordNotFound } from '../storage/types.js';
import { modelResolver } from './config-file.js';
import { printTable } from './table.js';
import { isoOrEmpty } from '../util/time.js';

export interface FlagsFlags {
  json?: boolean;
  description?: string;
  /** Effect. */
  route?: string;
  model?: string;
  /** Repeatable `TIER=model1,model2`: the route's tier mapping to use instead. */
  'tier-map'?: string[];
  'cache-mode'?: string;
  /** Targeting (comma lists; '' removes one on update). */
  tenants?: string;
  keys?: string;
  users?: string;
  tiers?: string;
  percentage?: string;
  enable?: boolean;
  disable?: boolean;
  /** audit paging. */
  limit?: string;
  'before-id'?: string;
}

/** The actor recorded in the audit trail for changes made here. */
export const CLI_ACTOR = 'cli';

const USAGE = `usage: tollgate flags list
       tollgate flags show <name>
       tollgate flags create <name> --route R [--model M] [--tier-map TIER=m1,m2 ...] [--cache-mode deterministic|always|off]
                             [--tenants a,b] [--keys a,b] [--users a,b] [--tiers free,premium] [--percentage P]
                             [--description D] [--disable]
       tollgate flags update <name> [same options; '' removes one, e.g. --tenants '']
       tollgate flags enable|disable|delete <name>
       tollgate flags audit [<name>] [--limit N] [--before-id ID]`;

/**
 * Where the flag store comes from. `Storage` gains `flags: FlagStore` when the lead wires the
 * adapters into src/storage/index.ts (SqliteFlagStore on the embedded database, PostgresFlagStore
 * on the distributed pool); until then this reads that member if present.
 */
export function defaultFlagStoreOf(storage: Storage): FlagStore | undefined {
  return (storage as Storage & { flags?: FlagStore }).flags;
}

/** Validation of flags against the config alone (no providers started). */
export function flagCatalog(config: Pick<Config, 'models' | 'routes'>) {
  const resolveModel = modelResolver(config as Config);
  const routes = new Map<string, string>();
  for (const [name, r] of Object.entries(config.routes)) {
    routes.set(name, name);
    for (const a of r.aliases) routes.set(a, name);
  }
  return {
    knownRoutes: (name: string) => routes.has(name),
    knownModel: (name: string) => resolveModel(name) !== undefined,
    tierNamesOf: (route: string) => {
      const r = config.routes[routes.get(route) ?? route];
      return r ? Object.keys(r.tiers) : undefined;
    },
    resolveName: (name: string) => routes.get(name) ?? resolveModel(name),
  };
}

export async function flagsCommand(
  config: Config,
  action: string | undefined,
  args: string[],
  flags: FlagsFlags,
  flagStoreOf: (storage: Storage) => FlagStore | undefined = defaultFlagStoreOf,
): Promise<void> {
  if (!action || !['list', 'show', 'create', 'update', 'enable', 'disable', 'delete', 'audit'].includes(action)) throw new Error(USAGE);
  const storage = await openStorage(config);
  try {
    const store = flagStoreOf(storage);
    if (!store) throw new Error('this storage backend has no feature-flag store (storage.flags)');
    const service = new FlagService({
      store,
      refreshMs: config.flags.refreshMs,
      ...flagCatalog(config),
      // Running gateways of a distributed deployment hear of the change at once; others poll.
      onChange: () => void storage.bus.publish({ kind: 'flags' }),
    });
    const delay = `Running gateways apply it within flags.refreshMs (${config.flags.refreshMs} ms).`;
    const print = (text: string) => void process.stdout.write(`${text}\n`);
    const printJson = (value: unknown) => print(JSON.stringify(value, null, 2));
    const nameArg = () => {
      const name = args[0];
      if (!name) throw new Error(`usage: tollgate flags ${action} <name>`);
      return name;
    };

    switch (action) {
      case 'list': {
        const list = await service.list();
        if (flags.json) return printJson(list.map(flagJson));
        printTable(
          ['name', 'enabled', 'route', 'effect', 'targeting', 'updated', 'by'],
          list.map((f) => [f.name, f.enabled ? 'yes' : 'no', f.effect.route, effectText(f.effect), targetingText(f), iso(f.updatedAt), f.updatedBy]),
        );
        return;
      }
      case 'show': {
        const name = nameArg();
        const flag = await service.get(name);
        if (!flag) throw new Error(`flag '${name}' not found`);
        if (flags.json) return printJson(flagJson(flag));
        printTable(
          ['field', 'value'],
          [
            ['name', flag.name],
            ['description', flag.description],
            ['enabled', flag.enabled ? 'yes' : 'no'],
            ['route', flag.effect.route],
            ['effect', effectText(flag.effect)],
            ['targeting', targetingText(flag)],
            ['created', iso(flag.createdAt)],
            ['updated', `${iso(flag.updatedAt)} by ${flag.updatedBy}`],
          ],
        );
        return;
      }
      case 'create': {
        const name = nameArg();
        if (!flags.route) throw new Error(`tollgate flags create needs --route (the route or model whose requests the flag changes)\n\n${USAGE}`);
        const input: FlagInput = {
          name,
          ...(flags.description !== undefined ? { description: flags.description } : {}),
          enabled: !flags.disable,
          targeting: dropEmpty(targetingFrom(flags)),
          effect: dropEmpty({ ...effectFrom(flags), route: flags.route }) as FlagEffect,
        };
        const created = await service.create(input, CLI_ACTOR).catch((err: unknown) => {
          if (err instanceof RecordConflict) throw new Error(`${err.message}; change it with 'tollgate flags update ${name} ...'`);
          throw err;
        });
        if (flags.json) return printJson(flagJson(created));
        return print(`Created flag ${created.name} (${created.enabled ? 'enabled' : 'disabled'}): ${effectText(created.effect)} on '${created.effect.route}' for ${targetingText(created)}. ${delay}`);
      }
      case 'update':
      case 'enable':
      case 'disable': {
        const name = nameArg();
        const patch: FlagUpdate = action === 'update' ? updateFrom(flags) : { enabled: action === 'enable' };
        if (Object.keys(patch).length === 0) throw new Error(`nothing to change: give at least one option\n\n${USAGE}`);
        const updated = await service.update(name, patch, CLI_ACTOR).catch(notFound);
        if (flags.json) return printJson(flagJson(updated));
        const state = updated.enabled ? 'enabled' : 'disabled';
        return print(`Updated flag ${updated.name} (${state}): ${effectText(updated.effect)} on '${updated.effect.route}' for ${targetingText(updated)}. ${delay}`);
      }
      case 'delete': {
        const name = nameArg();
        await service.delete(name, CLI_ACTOR).catch(notFound);
        return print(`Deleted flag ${name}. ${delay}`);
      }
      case 'audit': {
        const name = args[0];
        const limit = positiveInt(flags.limit, 'limit');
        const beforeId = positiveInt(flags['before-id'], 'before-id');
        const entries = await service.audit({
          limit: limit ?? 50,
          ...(name !== undefined ? { flag: name } : {}),
          ...(beforeId !== undefined ? { beforeId } : {}),
        });
        if (flags.json) return printJson(entries.map(flagAuditJson));
        printTable(
          ['id', 'at', 'flag', 'action', 'actor', 'change'],
          entries.map((e) => [String(e.id), iso(e.at), e.flag, e.action, e.actor, changeText(e)]),
        );
        return;
      }
    }
  } finally {
    await storage.close();
  }
}

/* ------------------------------------------ options ----------------------------------------- */

/** `a, b,,c` -> ['a', 'b', 'c']; '' -> [] (on update: remove the list). */
function list(value: string): string[] {
  return value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

function percentageOf(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) throw new Error(`--percentage must be a number from 0 to 100, got '${value}'`);
  return n;
}

function positiveInt(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || !Number.isSafeInteger(n)) throw new Error(`--${name} must be a positive integer, got '${value}'`);
  return n;
}

/** `--tier-map small=a,b --tier-map large=c` -> { small: ['a', 'b'], large: ['c'] }. */
function tierMap(entries: string[]): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const entry of entries) {
    const m = /^([^=]+)=(.*)$/.exec(entry);
    if (!m?.[1] || list(m[2] ?? '').length === 0) throw new Error(`--tier-map takes TIER=model1,model2, got '${entry}'`);
    out[m[1].trim()] = list(m[2] ?? '');
  }
  return out;
}

function cacheModeOf(value: string): FlagEffect['cacheMode'] {
  return value as FlagEffect['cacheMode']; // checked by the service (effect.cache_mode)
}

/** Targeting members given on the command line; '' (or an empty list) is null: "remove it". */
function targetingFrom(f: FlagsFlags): NonNullable<Exclude<FlagUpdate['targeting'], null>> {
  const out: NonNullable<Exclude<FlagUpdate['targeting'], null>> = {};
  for (const field of ['tenants', 'keys', 'users', 'tiers'] as const) {
    const v = f[field];
    if (v !== undefined) out[field] = list(v).length > 0 ? list(v) : null;
  }
  if (f.percentage !== undefined) out.percentage = f.percentage.trim() === '' ? null : percentageOf(f.percentage);
  return out;
}

/** Effect members given on the command line (route aside); '' is null: "remove it". */
function effectFrom(f: FlagsFlags): NonNullable<FlagUpdate['effect']> {
  const out: NonNullable<FlagUpdate['effect']> = {};
  if (f.model !== undefined) out.model = f.model.trim() === '' ? null : f.model.trim();
  if (f['tier-map'] !== undefined) {
    const given = f['tier-map'].filter((e) => e.trim() !== '');
    out.tiers = given.length === 0 ? null : tierMap(given);
  }
  if (f['cache-mode'] !== undefined) out.cacheMode = f['cache-mode'].trim() === '' ? null : cacheModeOf(f['cache-mode'].trim());
  return out;
}

function updateFrom(f: FlagsFlags): FlagUpdate {
  if (f.enable && f.disable) throw new Error('give --enable or --disable, not both');
  const patch: FlagUpdate = {};
  if (f.description !== undefined) patch.description = f.description;
  if (f.enable || f.disable) patch.enabled = f.enable === true;
  const targeting = targetingFrom(f);
  if (Object.keys(targeting).length > 0) patch.targeting = targeting;
  const effect = { ...effectFrom(f), ...(f.route ? { route: f.route } : {}) };
  if (Object.keys(effect).length > 0) patch.effect = effect;
  return patch;
}

/** Drops the members a new flag leaves out (null: nothing given). */
function dropEmpty<T extends object>(value: T): { [K in keyof T]: Exclude<T[K], null> } {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== null && v !== undefined)) as { [K in keyof T]: Exclude<T[K], null> };
}

function notFound(err: unknown): never {
  if (err instanceof RecordNotFound) throw new Error(err.message);
  throw err;
}

/* ------------------------------------------ output ------------------------------------------ */

const iso = (ms: number) => isoOrEmpty(ms);

function effectText(e: FlagEffect): string {
  const parts: string[] = [];
  if (e.model) parts.push(`model=${e.model}`);
  if (e.tiers) parts.push(`tiers=${Object.entries(e.tiers).map(([t, ms]) => `${t}:${ms.join('+')}`).join(' ')}`);
  if (e.cacheMode) parts.push(`cache=${e.cacheMode}`);
  return parts.join(' ') || '(none)';
}

function targetingText(f: Pick<Flag, 'targeting'>): string {
  const t = f.targeting;
  const parts: string[] = [];
  for (const field of ['tenants', 'keys', 'users', 'tiers'] as const) {
    const v = t[field];
    if (v && v.length > 0) parts.push(`${field}=${v.length > 5 ? `${v.slice(0, 5).join(',')},+${v.length - 5}` : v.join(',')}`);
  }
  parts.push(`${t.percentage ?? 100}%`);
  return parts.length === 1 ? `everyone (${parts[0]})` : parts.join(' ');
}

/** What an audit entry changed, in a few words. */
function changeText(e: FlagAuditEntry): string {
  if (e.action === 'create') return e.after ? `${effectText(e.after.effect)}; ${targetingText(e.after)}` : '';
  if (e.action === 'delete' || !e.before || !e.after) return '';
  const { before: b, after: a } = e;
  const changes: string[] = [];
  if (b.enabled !== a.enabled) changes.push(a.enabled ? 'enabled' : 'disabled');
  if (b.description !== a.description) changes.push('description');
  if (JSON.stringify(b.effect) !== JSON.stringify(a.effect)) changes.push(`effect: ${effectText(b.effect)} -> ${effectText(a.effect)}`);
  if (JSON.stringify(b.targeting) !== JSON.stringify(a.targeting)) changes.push(`targeting: ${targetingText(b)} -> ${targetingText(a)}`);
  return changes.join('; ') || '(no change)';
}
