#!/usr/bin/env node
/**
 * The `tollgate` command line: start | sim | keys | tenants | kill | usage | flags | experiments |
 * shadow | cache | check-config.
 */
import { parseArgs } from 'node:util';
import { ConfigError } from '../config/loader.js';
import { GatewayError } from '../errors.js';
import { loadCliConfig } from './config-file.js';

const HELP = `Usage: tollgate <command> [options]

Commands:
  start [--config FILE] [--host H] [--port N]   serve the gateway (defaults: embedded mode, built-in simulator)
  sim [--port N] [--host H] [--latency MS] [--tps N] [--error-rate 500=0.05,429=0.02]
                                                the simulated provider as a standalone OpenAI-compatible server
  keys create [--tenant ID] [--name N] [--tier T] [--models a,b] [--user U] [--expires-in 30d] [--admin]
  keys list [--tenant ID] [--all]
  keys revoke <key-id>
  tenants create <name> [--id ID] [--tier T]
  tenants list
  kill list | create --scope global|tenant|key|model|provider [--target T] --reason R | delete <id>
                                                kill switches: refuse a tenant, key, model, provider or everything
  usage [--from DATE] [--to DATE] [--group-by tenant,key,user,model,route,day] [--tenant ID] [--key ID]
        [--user U] [--model M] [--csv|--json]   cost and tokens from the ledger (default: last 30 days, by tenant)
  flags list | show <name> | audit [<name>] [--limit N] [--before-id ID]
  flags create <name> --route R [--model M] [--tier-map tier=m1,m2]... [--cache-mode deterministic|always|off]
        [--percentage P] [--tenants a,b] [--keys a,b] [--users a,b] [--tiers free,premium] [--description D] [--disable]
  flags update <name> [the same options] | enable <name> | disable <name> | delete <name>
                                                feature flags: switch a route's model, tiers or cache policy for a target
  experiments list | show <id> [--from DATE] [--to DATE]
                                                A/B experiments (config) and their per-variant results
  shadow report <route> [--from DATE] [--to DATE]
                                                shadow traffic: agreement, cost and latency of each candidate
  cache eval --pairs FILE.jsonl [--route NAME] [--precision 0.98 [--hard]] [--json]
                                                the semantic cache on your labelled pairs {"a","b","duplicate"}:
                                                reuse and precision by threshold, and the threshold reaching a precision
  check-config [--config FILE]                  validate a config file and exit

Config: --config FILE, else $TOLLGATE_CONFIG, else ./tollgate.yaml if present, else built-in defaults.
Add --json to list/create commands for machine-readable output.
`;

/** `{ name: { type } }` for each name: the options of parseArgs, typed by name. */
function typed<S extends string, B extends string>(
  strings: readonly S[],
  booleans: readonly B[],
): { [K in S]: { type: 'string' } } & { [K in B]: { type: 'boolean' } } {
  const out: Record<string, { type: 'string' | 'boolean' }> = {};
  for (const name of strings) out[name] = { type: 'string' };
  for (const name of booleans) out[name] = { type: 'boolean' };
  return out as { [K in S]: { type: 'string' } } & { [K in B]: { type: 'boolean' } };
}

/** Every option of every command (parseArgs is strict: an unknown option is an error). */
const OPTIONS = {
  ...typed(
    // prettier-ignore
    ['host', 'latency', 'tps', 'error-rate', 'tenant', 'name', 'tier', 'models', 'user', 'expires-in', 'id', 'route', 'percentage',
      'tenants', 'keys', 'users', 'tiers', 'description', 'cache-mode', 'limit', 'before-id', 'from', 'to', 'group-by',
      'key', 'model', 'scope', 'target', 'reason', 'pairs', 'precision'],
    ['admin', 'all', 'json', 'csv', 'enable', 'disable', 'hard'],
  ),
  config: { type: 'string', short: 'c' },
  port: { type: 'string', short: 'p' },
  'tier-map': { type: 'string', multiple: true },
  help: { type: 'boolean', short: 'h' },
} as const;

function int(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a non-negative integer, got '${v}'`);
  return n;
}

export async function main(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: OPTIONS,
  });
  const [command, action, ...rest] = positionals;
  if (values.help && command === 'cache') {
    process.stdout.write(`${(await import('./cache-eval.js')).CACHE_USAGE}\n`);
    return;
  }
  if (values.help || !command || command === 'help') {
    process.stdout.write(HELP);
    return;
  }
  const { config, path } = loadCliConfig(values.config);
  switch (command) {
    case 'start': {
      const port = int(values.port, 'port');
      if (values.host) config.server.host = values.host;
      if (port !== undefined) config.server.port = port;
      return (await import('./start.js')).startCommand(config, path);
    }
    case 'sim': {
      const latency = int(values.latency, 'latency');
      const tps = int(values.tps, 'tps');
      return (await import('./sim.js')).simCommand(config, {
        host: values.host ?? '127.0.0.1',
        port: int(values.port, 'port') ?? 8090,
        ...(latency !== undefined ? { latencyMs: latency } : {}),
        ...(tps !== undefined ? { tokensPerSecond: tps } : {}),
        ...(values['error-rate'] ? { errorRate: values['error-rate'] } : {}),
      });
    }
    case 'keys':
      return (await import('./admin.js')).keysCommand(config, action, rest, values);
    case 'tenants':
      return (await import('./admin.js')).tenantsCommand(config, action, rest, values);
    case 'kill':
      return (await import('./kill.js')).killCommand(config, action, rest, values);
    case 'usage':
      return (await import('./usage.js')).usageCommand(config, values);
    case 'flags':
      return (await import('./flags.js')).flagsCommand(config, action, rest, values);
    case 'experiments':
      return (await import('./experiments.js')).experimentsCommand(config, action, rest, values);
    case 'shadow':
      return (await import('./shadow.js')).shadowCommand(config, action, rest, values);
    case 'cache':
      return (await import('./cache-eval.js')).cacheCommand(config, action, values);
    case 'check-config':
      process.stdout.write(
        `${path ?? '(built-in defaults)'}: OK — ${Object.keys(config.providers).length} provider(s), ${Object.keys(config.models).length} model(s), storage ${config.storage.kind}\n`,
      );
      return;
    default:
      throw new Error(`unknown command '${command}'\n\n${HELP}`);
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  if (err instanceof ConfigError) process.stderr.write(`${err.message}\n`);
  else if (err instanceof GatewayError) process.stderr.write(`error: ${err.message}\n`);
  else process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
