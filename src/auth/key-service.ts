/**
 * Creating tenants and keys, shared by the admin API, the CLI and first-start bootstrap, so the
 * rules (tier defaults, hashing, validation) live in one place.
 */
import { GatewayError } from '../errors.js';
import type { ApiKeyRecord, Records, Tenant } from '../storage/types.js';
import { generateKey } from './keys.js';
import { DATE_RANGE_TEXT, isDateInRange } from '../util/time.js';

export interface CreateKeyInput {
  tenantId: string;
  name?: string;
  kind?: ApiKeyRecord['kind'];
  tier?: string;
  allowedModels?: string[] | null;
  userId?: string | null;
  expiresAt?: number | null;
}

export interface CreatedKey {
  record: ApiKeyRecord;
  /** The only time the secret exists outside the caller's hands. */
  secret: string;
}

export interface KeyServiceOptions {
  records: Records;
  tiers: readonly string[];
  /** Resolves a model name or alias to its public name, or undefined if unknown. */
  resolveModel: (name: string) => string | undefined;
}

export class KeyService {
  constructor(private readonly opts: KeyServiceOptions) {}

  async createTenant(input: { id?: string; name: string; tier?: string; metadata?: Record<string, unknown> }): Promise<Tenant> {
    const tier = input.tier ?? 'standard';
    this.checkTier(tier, 'tier');
    return this.opts.records.createTenant({ ...input, tier });
  }

  async createKey(input: CreateKeyInput): Promise<CreatedKey> {
    const tenant = await this.opts.records.getTenant(input.tenantId);
    if (!tenant) throw new GatewayError('not_found', `tenant '${input.tenantId}' not found`, { param: 'tenant_id' });
    const tier = input.tier ?? tenant.tier;
    this.checkTier(tier, 'tier');
    const allowedModels = input.allowedModels ? this.canonicalModels(input.allowedModels) : null;
    if (input.expiresAt != null && !isDateInRange(input.expiresAt)) {
      // A time a Date cannot show would break every listing of keys (the row is stored first).
      throw new GatewayError('invalid_value', `expires_at must be a date ${DATE_RANGE_TEXT}`, { param: 'expires_at' });
    }
    if (input.expiresAt != null && input.expiresAt <= Date.now()) {
      throw new GatewayError('invalid_value', 'expires_at must be in the future', { param: 'expires_at' });
    }
    const kind = input.kind ?? 'api';
    const generated = generateKey(kind);
    const record = await this.opts.records.createKey({
      tenantId: tenant.id,
      name: input.name ?? (kind === 'admin' ? 'admin' : 'api key'),
      kind,
      prefix: generated.prefix,
      hash: generated.hash,
      tier,
      allowedModels,
      userId: input.userId ?? null,
      expiresAt: input.expiresAt ?? null,
    });
    return { record, secret: generated.secret };
  }

  canonicalModels(models: string[]): string[] {
    return models.map((m, i) => {
      const name = this.opts.resolveModel(m);
      if (!name) throw new GatewayError('invalid_value', `unknown model '${m}'`, { param: `allowed_models[${i}]` });
      return name;
    });
  }

  checkTier(tier: string, param: string): void {
    if (!this.opts.tiers.includes(tier)) {
      throw new GatewayError('invalid_value', `unknown tier '${tier}' (configured: ${this.opts.tiers.join(', ')})`, { param });
    }
  }
}

export interface BootstrapResult {
  tenant: Tenant;
  adminKey: CreatedKey;
  demoKey: CreatedKey;
}

/**
 * On first start (no admin key exists yet): a `default` tenant, an admin key and a demo API key.
 * Returns undefined when the store was already set up.
 */
export async function bootstrapKeys(records: Records, keys: KeyService): Promise<BootstrapResult | undefined> {
  if ((await records.countKeys({ kind: 'admin' })) > 0) return undefined;
  const tenant = (await records.getTenant('default')) ?? (await keys.createTenant({ id: 'default', name: 'default', tier: 'standard' }));
  const adminKey = await keys.createKey({ tenantId: tenant.id, name: 'bootstrap admin', kind: 'admin' });
  const demoKey = await keys.createKey({ tenantId: tenant.id, name: 'demo' });
  return { tenant, adminKey, demoKey };
}
