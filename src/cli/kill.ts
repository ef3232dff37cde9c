/**
 * `tollgate kill list|create|delete`: kill switches, written directly to the store the config
 * points at. Running gateways sharing that store apply a change within `killSwitches.refreshMs`.
 */
import type { Config } from '../config/schema.js';
import { killSwitchJson } from '../http/routes/kill-switches.js';
import { KillSwitches } from '../metering/kill-switches.js';
import { openStorage } from '../storage/index.js';
import { RecordConflict, RecordNotFound } from '../storage/types.js';
import { modelResolver } from './config-file.js';
import { printTable } from './table.js';
import { isoOrEmpty } from '../util/time.js';

export interface KillFlags {
  scope?: string;
  target?: string;
  reason?: string;
  json?: boolean;
}

const USAGE = 'usage: tollgate kill list | create --scope global|tenant|key|model|provider [--target T] --reason R | delete <id>';

export async function killCommand(config: Config, action: string | undefined, args: string[], flags: KillFlags): Promise<void> {
  const storage = await openStorage(config);
  try {
    const switches = new KillSwitches({
      records: storage.records,
      refreshMs: config.killSwitches.refreshMs,
      resolveModel: modelResolver(config),
      providers: Object.keys(config.providers),
      // Running gateways of a distributed deployment hear of the change at once; others poll.
      onChange: () => void storage.bus.publish({ kind: 'kill-switches' }),
    });
    const delay = `Running gateways apply it within killSwitches.refreshMs (${config.killSwitches.refreshMs} ms).`;
    switch (action) {
      case 'list': {
        const list = await switches.list();
        if (flags.json) return void process.stdout.write(`${JSON.stringify(list.map(killSwitchJson), null, 2)}\n`);
        printTable(
          ['id', 'scope', 'target', 'reason', 'created by', 'created'],
          list.map((s) => [s.id, s.scope, s.target, s.reason, s.createdBy ?? '', isoOrEmpty(s.createdAt)]),
        );
        return;
      }
      case 'create': {
        if (!flags.scope || !flags.reason) throw new Error(USAGE);
        const created = await switches
          .create({ scope: flags.scope, ...(flags.target !== undefined ? { target: flags.target } : {}), reason: flags.reason, createdBy: 'cli' })
          .catch((err: unknown) => {
            if (err instanceof RecordConflict) throw new Error(`${err.message}; delete it first to change it`);
            throw err;
          });
        if (flags.json) return void process.stdout.write(`${JSON.stringify(killSwitchJson(created), null, 2)}\n`);
        const what = created.scope === 'global' ? 'everything' : `${created.scope} '${created.target}'`;
        process.stdout.write(`Created kill switch ${created.id}: ${what} is disabled (${created.reason}). ${delay}\n`);
        return;
      }
      case 'delete': {
        const id = args[0];
        if (!id) throw new Error('usage: tollgate kill delete <id>');
        await switches.delete(id).catch((err: unknown) => {
          if (err instanceof RecordNotFound) throw new Error(err.message);
          throw err;
        });
        process.stdout.write(`Deleted kill switch ${id}. ${delay}\n`);
        return;
      }
      default:
        throw new Error(USAGE);
    }
  } finally {
    await storage.close();
  }
}
