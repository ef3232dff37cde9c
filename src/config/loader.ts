/**
 * Loads the YAML config: `${ENV_VAR}` (and `${ENV_VAR:-default}`) interpolation, zod validation,
 * defaults for providers/models/tiers. A bad config throws a {@link ConfigError} whose lines name
 * the exact path and problem, e.g. `providers.openai.baseUrl: must be a URL (http:// or https://)`.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import type { ZodIssue } from 'zod';
import { configSchema, type Config, type RawConfig } from './schema.js';
import { DEFAULT_SIM_MODELS, ZERO_CONFIG, defaultModels, defaultProviders, defaultTiers } from './defaults.js';

export class ConfigError extends Error {
  readonly problems: string[];
  constructor(problems: string[], source?: string) {
    super(`invalid config${source ? ` (${source})` : ''}:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

const ENV_REF = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/** Replaces ${VAR} and ${VAR:-default} in every string of a parsed YAML tree. */
export function interpolateEnv(value: unknown, env: NodeJS.ProcessEnv, path: string[] = [], missing: string[] = []): unknown {
  if (typeof value === 'string') {
    return value.replace(ENV_REF, (_m, name: string, fallback: string | undefined) => {
      const v = env[name];
      if (v !== undefined && v !== '') return v;
      if (fallback !== undefined) return fallback;
      missing.push(`${formatPath(path)}: environment variable ${name} is not set`);
      return '';
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => interpolateEnv(v, env, [...path, String(i)], missing));
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = interpolateEnv(v, env, [...path, k], missing);
    return out;
  }
  return value;
}

function formatPath(path: (string | number)[]): string {
  return path.length === 0 ? '(root)' : path.map(String).join('.');
}

function describeIssue(issue: ZodIssue): string {
  const where = formatPath(issue.path);
  switch (issue.code) {
    case 'invalid_type':
      return issue.received === 'undefined'
        ? `${where}: is required`
        : `${where}: expected ${issue.expected}, got ${issue.received}`;
    case 'unrecognized_keys':
      return `${where}: unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `'${k}'`).join(', ')}`;
    case 'invalid_union_discriminator':
      return `${where}: must be one of ${issue.options.map((o) => `'${String(o)}'`).join(', ')}`;
    case 'invalid_enum_value':
      return `${where}: must be one of ${issue.options.map((o) => `'${String(o)}'`).join(', ')}, got '${String(issue.received)}'`;
    default:
      return `${where}: ${issue.message}`;
  }
}

/** Validates a parsed config object (already interpolated) and fills in defaults. */
export function buildConfig(raw: unknown, source?: string): Config {
  const input = raw ?? {};
  const result = configSchema.safeParse(input);
  if (!result.success) throw new ConfigError(result.error.issues.map(describeIssue), source);
  const parsed = result.data;
  const providers = parsed.providers ?? defaultProviders();
  const models = parsed.models ?? defaultModels(firstSimulatedProvider(providers) ?? 'sim');
  if (!parsed.models && !firstSimulatedProvider(providers)) {
    throw new ConfigError(['models: is required when no simulated provider is configured'], source);
  }
  const config: Config = { ...parsed, providers, models, tiers: parsed.tiers ?? defaultTiers() };
  const problems = crossCheck(config);
  if (problems.length) throw new ConfigError(problems, source);
  return config;
}

function firstSimulatedProvider(providers: Config['providers']): string | undefined {
  return Object.entries(providers).find(([, p]) => p.kind === 'simulated')?.[0];
}

/** Checks that references between sections resolve (deployments -> providers, aliases unique...). */
function crossCheck(config: Config): string[] {
  const problems: string[] = [];
  const names = new Map<string, string>();
  for (const [name, model] of Object.entries(config.models)) {
    if (names.has(name)) problems.push(`models.${name}: name already used as an alias of ${names.get(name)}`);
    names.set(name, name);
    model.deployments.forEach((d, i) => {
      const provider = config.providers[d.provider];
      const where = `models.${name}.deployments.${i}`;
      if (!provider) {
        const known = Object.keys(config.providers).join(', ') || '(none)';
        problems.push(`${where}.provider: unknown provider '${d.provider}' (configured: ${known})`);
      } else if (provider.kind === 'anthropic' && model.type === 'embedding') {
        problems.push(`${where}.provider: '${d.provider}' is an anthropic provider, which serves no embeddings`);
      } else if (provider.kind === 'simulated') {
        const simModels = provider.models ?? DEFAULT_SIM_MODELS;
        const upstream = d.model ?? name;
        const sim = simModels[upstream];
        if (!sim) problems.push(`${where}.model: the simulator '${d.provider}' has no model '${upstream}' (it has: ${Object.keys(simModels).join(', ')})`);
        else if (sim.type !== model.type) problems.push(`${where}.model: '${upstream}' is a simulated ${sim.type} model, but model ${name} has type ${model.type}`);
      }
    });
    model.aliases.forEach((alias, i) => {
      const owner = names.get(alias);
      if (owner !== undefined) problems.push(`models.${name}.aliases.${i}: '${alias}' is already the name or an alias of ${owner}`);
      else names.set(alias, name);
    });
  }
  problems.push(...checkRoutes(config, names));
  const embedder = config.cache.semantic.embedder;
  if (embedder.kind === 'deployment') {
    const target = names.get(embedder.model);
    if (target === undefined) problems.push(`cache.semantic.embedder.model: unknown model '${embedder.model}'`);
    else if (config.models[target]?.type !== 'embedding') problems.push(`cache.semantic.embedder.model: '${embedder.model}' is not an embedding model (type: embedding)`);
  }
  for (const [tier, t] of Object.entries(config.tiers)) {
    t.models?.forEach((m, i) => {
      if (!names.has(m)) problems.push(`tiers.${tier}.models.${i}: unknown model '${m}'`);
    });
  }
  return problems;
}

/** Routes (names unique among models and aliases; tiers of known chat models; rules' tier names) and experiments. Adds route names to `names`. */
function checkRoutes(config: Config, names: Map<string, string>): string[] {
  const problems: string[] = [];
  const chatModel = (m: string) => {
    const target = names.get(m);
    return target !== undefined && config.models[target]?.type === 'chat';
  };
  const routeNames = new Map<string, string>();
  for (const [name, route] of Object.entries(config.routes)) {
    for (const n of [name, ...route.aliases]) {
      const owner = names.get(n) ?? routeNames.get(n);
      if (owner !== undefined) problems.push(`routes.${name}: '${n}' is already the name or an alias of ${owner}`);
      else routeNames.set(n, name);
    }
    const tierNames = Object.keys(route.tiers);
    for (const [tier, models] of Object.entries(route.tiers)) {
      models.forEach((m, i) => {
        if (!chatModel(m)) problems.push(`routes.${name}.tiers.${tier}.${i}: '${m}' is not a chat model of models`);
      });
    }
    route.rules.forEach((r, i) => {
      for (const field of ['tier', 'minTier', 'maxTier'] as const) {
        const t = r[field];
        if (t !== undefined && !tierNames.includes(t)) problems.push(`routes.${name}.rules.${i}.${field}: unknown tier '${t}' (tiers: ${tierNames.join(', ')})`);
      }
    });
    if (route.shadow && !chatModel(route.shadow.model)) problems.push(`routes.${name}.shadow.model: '${route.shadow.model}' is not a chat model of models`);
  }
  for (const [name, route] of Object.entries(config.routes)) {
    for (const n of [name, ...route.aliases]) if (!names.has(n)) names.set(n, name);
  }
  const perRoute = new Map<string, string>();
  for (const [id, e] of Object.entries(config.experiments)) {
    const target = names.get(e.route);
    if (target === undefined) problems.push(`experiments.${id}.route: unknown route or model '${e.route}'`);
    else if (e.enabled) {
      if (perRoute.has(target)) problems.push(`experiments.${id}.route: '${e.route}' already has experiment ${perRoute.get(target)} (one per route)`);
      perRoute.set(target, id);
    }
    const seen = new Set<string>();
    e.variants.forEach((v, i) => {
      if (seen.has(v.name)) problems.push(`experiments.${id}.variants.${i}.name: '${v.name}' is used twice`);
      seen.add(v.name);
      if (v.model !== undefined && !names.has(v.model)) problems.push(`experiments.${id}.variants.${i}.model: unknown model '${v.model}'`);
      for (const k of Object.keys(v.params ?? {})) {
        if (['messages', 'model', 'stream', 'stream_options'].includes(k)) problems.push(`experiments.${id}.variants.${i}.params.${k}: cannot be set by a variant`);
      }
    });
  }
  return problems;
}

/** Parses YAML text (with env interpolation) into a validated Config. */
export function parseConfigText(text: string, env: NodeJS.ProcessEnv = process.env, source?: string): Config {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    const msg = err instanceof YAMLParseError ? err.message.split('\n')[0] : String(err);
    throw new ConfigError([`(yaml): ${msg}`], source);
  }
  const missing: string[] = [];
  const interpolated = interpolateEnv(doc ?? {}, env, [], missing);
  if (missing.length) throw new ConfigError(missing, source);
  return buildConfig(interpolated, source);
}

/**
 * Loads a config file; with none (`file` undefined), the zero-config demo (ZERO_CONFIG: the `auto`
 * route and tiers with limits and budgets). A file replaces the demo entirely.
 */
export function loadConfig(file?: string, env: NodeJS.ProcessEnv = process.env): Config {
  if (file === undefined) return buildConfig(structuredClone(ZERO_CONFIG), '(built-in defaults)');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError([`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`], file);
  }
  return parseConfigText(text, env, file);
}

export type { RawConfig };
