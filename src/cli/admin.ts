/**
 * `tollgate keys ...` and `tollgate tenants ...`: manage tenants and keys directly in the store the
 * config points at (the gateway may be running: SQLite WAL allows it; a running gateway sees a
 * revoke within its auth cache TTL).
 */
import { KeyService } from '../auth/key-service.js';
import { parseDuration } from '../auth/keys.js';
import type { Config } from '../config/schema.js';
import { keyJson, tenantJson } from '../http/routes/admin.js';
import { openStorage } from '../storage/index.js';
import { modelResolver } from './config-file.js';
import { printTable } from './table.js';
import { isoOrEmpty } from '../util/time.js';

export interface KeyFlags {
  tenant?: string;
  name?: string;
  tier?: string;
  models?: string;
  user?: string;
  'expires-in'?: string;
  admin?: boolean;
  all?: boolean;
  id?: string;
  json?: boolean;
}

type Store = Awaited<ReturnType<typeof openStorage>>;

async function withStore<T>(config: Config, fn: (s: { keys: KeyService; records: Store['records']; bus: Store['bus'] }) => Promise<T>): Promise<T> {
  const storage = await openStorage(config);
  try {
    const keys = new KeyService({ records: storage.records, tiers: Object.keys(config.tiers), resolveModel: modelResolver(config) });
    return await fn({ keys, records: storage.records, bus: storage.bus });
  } finally {
    await storage.close();
  }
}

export async function keysCommand(config: Config, action: string | undefined, args: string[], flags: KeyFlags): Promise<void> {
  await withStore(config, async ({ keys, records, bus }) => {
    switch (action) {
      case 'create': {
        const tenantId = flags.tenant ?? 'default';
        const created = await keys.createKey({
          tenantId,
          ...(flags.name ? { name: flags.name } : {}),
          kind: flags.admin ? 'admin' : 'api',
          ...(flags.tier ? { tier: flags.tier } : {}),
          allowedModels: flags.models ? flags.models.split(',').map((m) => m.trim()).filter(Boolean) : null,
          userId: flags.user ?? null,
          expiresAt: flags['expires-in'] ? Date.now() + parseDuration(flags['expires-in']) : null,
        });
        if (flags.json) process.stdout.write(`${JSON.stringify({ ...keyJson(created.record), key: created.secret }, null, 2)}\n`);
        else {
          process.stdout.write(`Created ${created.record.kind} key ${created.record.id} for tenant ${tenantId} (tier ${created.record.tier}).\n`);
          process.stdout.write(`Secret (shown once, store it now): ${created.secret}\n`);
        }
        return;
      }
      case 'list': {
        const list = await records.listKeys({ ...(flags.tenant ? { tenantId: flags.tenant } : {}), includeRevoked: flags.all === true });
        if (flags.json) return void process.stdout.write(`${JSON.stringify(list.map(keyJson), null, 2)}\n`);
        printTable(
          ['id', 'tenant', 'kind', 'prefix', 'tier', 'models', 'user', 'expires', 'revoked'],
          list.map((k) => [
            k.id,
            k.tenantId,
            k.kind,
            `${k.prefix}...`,
            k.tier,
            k.allowedModels?.join(',') ?? '*',
            k.userId ?? '',
            isoOrEmpty(k.expiresAt),
            isoOrEmpty(k.revokedAt),
          ]),
        );
        return;
      }
      case 'revoke': {
        const id = args[0];
        if (!id) throw new Error('usage: tollgate keys revoke <key-id>');
        const k = await records.revokeKey(id);
        await bus.publish({ kind: 'auth', keyId: k.id }); // distributed: running gateways drop it at once
        const ttl = `auth.cacheTtlMs (${config.auth.cacheTtlMs} ms)`;
        const when = config.storage.kind === 'distributed' ? `at once (told through Redis; at the latest after ${ttl})` : `within ${ttl}`;
        process.stdout.write(`Revoked ${k.id} (${k.prefix}...). Running gateways stop accepting it ${when}.\n`);
        return;
      }
      default:
        throw new Error('usage: tollgate keys create|list|revoke [options]');
    }
  });
}

export async function tenantsCommand(config: Config, action: string | undefined, args: string[], flags: KeyFlags): Promise<void> {
  await withStore(config, async ({ keys, records }) => {
    switch (action) {
      case 'create': {
        const name = args[0];
        if (!name) throw new Error('usage: tollgate tenants create <name> [--id ID] [--tier TIER]');
        const t = await keys.createTenant({ name, ...(flags.id ? { id: flags.id } : {}), ...(flags.tier ? { tier: flags.tier } : {}) });
        if (flags.json) process.stdout.write(`${JSON.stringify(tenantJson(t), null, 2)}\n`);
        else process.stdout.write(`Created tenant ${t.id} (${t.name}, tier ${t.tier}).\n`);
        return;
      }
      case 'list': {
        const list = await records.listTenants();
        if (flags.json) return void process.stdout.write(`${JSON.stringify(list.map(tenantJson), null, 2)}\n`);
        printTable(['id', 'name', 'tier', 'created'], list.map((t) => [t.id, t.name, t.tier, isoOrEmpty(t.createdAt)]));
        return;
      }
      default:
        throw new Error('usage: tollgate tenants create|list [options]');
    }
  });
}
