/**
 * GET /admin/v1/tenants/:id/webhook-secret: a tenant's job webhook signing secret (derived from
 * the master secret), to verify the signatures of its webhooks. 409 when webhooks are off.
 */
import type { FastifyInstance } from 'fastify';
import { GatewayError } from '../../errors.js';
import type { Records } from '../../storage/types.js';

export interface WebhookSecretRoutesOptions {
  records: Pick<Records, 'getTenant'>;
  /** A tenant's job webhook signing secret (absent: webhooks are off). */
  webhookSecret?: ((tenantId: string) => string) | undefined;
}

const idParams = { type: 'object', properties: { id: { type: 'string', minLength: 1, maxLength: 128 } } } as const;

export async function webhookSecretRoutes(app: FastifyInstance, opts: WebhookSecretRoutesOptions): Promise<void> {
  app.get<{ Params: { id: string } }>('/tenants/:id/webhook-secret', { schema: { params: idParams } }, async (request) => {
    const tenant = await opts.records.getTenant(request.params.id);
    if (!tenant) throw new GatewayError('not_found', `No tenant with id '${request.params.id}'.`, { param: 'id' });
    if (!opts.webhookSecret) {
      throw new GatewayError('conflict', 'Job webhooks are off: set jobs.webhooks.signingSecret (required in distributed mode).');
    }
    return { object: 'webhook_secret', tenant_id: tenant.id, secret: opts.webhookSecret(tenant.id) };
  });
}
