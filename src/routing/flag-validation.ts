/**
 * Checking what `FlagService.create` and `update` take (src/routing/flags.ts): each field of a
 * flag validated and returned as a clean copy, with 400 GatewayErrors naming the field; the
 * effect's route and models checked against the config and stored by their canonical names.
 */
import { GatewayError } from '../errors.js';
import type { FlagServiceOptions } from './flags.js';
import type { FlagEffect, FlagTargeting } from './types.js';

export const CACHE_MODES: readonly NonNullable<FlagEffect['cacheMode']>[] = ['deterministic', 'always', 'off'];
const FLAG_NAME = /^[A-Za-z0-9_.-]{1,64}$/;
const TARGET_LISTS = ['tenants', 'keys', 'users', 'tiers'] as const;
const MAX_DESCRIPTION = 500;
const MAX_LIST = 10_000;
const MAX_ID = 256;

/** What the effect is checked against (the service's options). */
export type FlagCatalog = Pick<FlagServiceOptions, 'knownRoutes' | 'knownModel' | 'tierNamesOf' | 'resolveName'>;

export function validName(name: unknown): string {
  if (typeof name !== 'string' || name === '') throw new GatewayError('missing_field', "A flag needs a 'name'.", { param: 'name' });
  if (!FLAG_NAME.test(name)) {
    throw new GatewayError('invalid_value', `Invalid value for 'name': '${clip(name)}' must be 1-64 letters, digits, '_', '.' or '-'.`, { param: 'name' });
  }
  return name;
}

export function validDescription(value: unknown): string {
  if (typeof value !== 'string') throw invalidType('description', 'string');
  if (value.length > MAX_DESCRIPTION) throw invalid('description', `longer than ${MAX_DESCRIPTION} characters`);
  return value;
}

export function validEnabled(value: unknown): boolean {
  if (typeof value !== 'boolean') throw invalidType('enabled', 'boolean');
  return value;
}

/** A clean copy: lists deduplicated, empty lists dropped (no constraint), unknown members left out. */
export function validTargeting(value: unknown): FlagTargeting {
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
export function validEffect(value: unknown, catalog: FlagCatalog): FlagEffect {
  if (value === undefined || value === null) throw new GatewayError('missing_field', "A flag needs an 'effect'.", { param: 'effect' });
  if (typeof value !== 'object' || Array.isArray(value)) throw invalidType('effect', 'object');
  const e = value as Record<string, unknown>;
  const { knownRoutes, knownModel, tierNamesOf } = catalog;
  const canonical = (name: string) => catalog.resolveName?.(name) ?? name;

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

export function invalidType(param: string, expected: string): GatewayError {
  return new GatewayError('invalid_type', `Invalid type for '${param}': expected ${expected}.`, { param });
}

function invalid(param: string, why: string): GatewayError {
  return new GatewayError('invalid_value', `Invalid value for '${param}': ${why}.`, { param });
}

/** A copy without the members set to null (merge-patch removals). */
export function dropNulls<T extends object>(value: T): { [K in keyof T]: Exclude<T[K], null> } {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) if (v !== null && v !== undefined) out[k] = v;
  return out as { [K in keyof T]: Exclude<T[K], null> };
}

/** User input quoted in messages, kept short. */
function clip(s: string): string {
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}
