/** Which config file the CLI uses: --config, else $TOLLGATE_CONFIG, else ./tollgate.yaml if present, else none (defaults). */
import { existsSync } from 'node:fs';
import { type Config } from '../config/schema.js';
import { loadConfig } from '../config/loader.js';

export function resolveConfigPath(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (flag) return flag;
  if (env['TOLLGATE_CONFIG']) return env['TOLLGATE_CONFIG'];
  return existsSync('tollgate.yaml') ? 'tollgate.yaml' : undefined;
}

export function loadCliConfig(flag: string | undefined): { config: Config; path: string | undefined } {
  const path = resolveConfigPath(flag);
  return { config: loadConfig(path), path };
}

/** Resolves a model name or alias from config alone (no providers started). */
export function modelResolver(config: Config): (name: string) => string | undefined {
  const names = new Map<string, string>();
  for (const [name, m] of Object.entries(config.models)) {
    names.set(name, name);
    for (const a of m.aliases) names.set(a, name);
  }
  return (name) => names.get(name);
}
