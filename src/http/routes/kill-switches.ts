/**
 * `/admin/v1/kill-switches`: list, create and lift kill switches (src/metering/kill-switches.ts).
 * A change made here applies in this process at once, and in every other process sharing the
 * store within `killSwitches.refreshMs`. Kill switches never apply to the admin API itself.
 */
import type { FastifyInstance } from 'fastify';
import type { Authenticator } from '../../auth/authenticator.js';
import { extractKey } from '../../auth/keys.js';
import { GatewayError } from '../../errors.js';
import { isoOrNull } from '../../util/time.js';
import { KILL_SWITCH_SCOPES, type KillSwitches } from '../../metering/kill-switches.js';
import { type KillSwitch, RecordConflict, RecordNotFound } from '../../storage/types.js';

export interface KillSwitchRoutesOptions {
  killSwitches: KillSwitches;
  authenticator: Authenticator;
}

export function killSwitchJson(s: KillSwitch) {
  return {
    id: s.id,
    object: 'kill_switch',
    scope: s.scope,
    target: s.target,
    reason: s.reason,
    created_by: s.createdBy,
    created_at: isoOrNull(s.createdAt),
  };
}

const createBody = {
  type: 'object',
  required: ['scope', 'reason'],
  additionalProperties: false,
  properties: {
    scope: { type: 'string', enum: KILL_SWITCH_SCOPES },
    target: { type: 'string', maxLength: 256 },
    reason: { type: 'string', minLength: 1, maxLength: 500 },
  },
} as const;
const idParams = { type: 'object', properties: { id: { type: 'string', minLength: 1, maxLength: 128 } } } as const;

export async function killSwitchRoutes(app: FastifyInstance, opts: KillSwitchRoutesOptions): Promise<void> {
  const { killSwitches, authenticator } = opts;

  app.get('/kill-switches', async () => ({ object: 'list', data: (await killSwitches.list()).map(killSwitchJson) }));

  app.post<{ Body: { scope: string; target?: string; reason: string } }>(
    '/kill-switches',
    { schema: { body: createBody } },
    async (request, reply) => {
      // Already authenticated by the admin hook (a cache hit): who made the switch.
      const admin = await authenticator.authenticate(extractKey(request.headers));
      const created = await killSwitches.create({ ...request.body, createdBy: admin.keyId }).catch((err: unknown) => {
        if (err instanceof RecordConflict) throw new GatewayError('conflict', `${err.message}; delete it first to change it.`);
        throw err;
      });
      reply.code(201);
      return killSwitchJson(created);
    },
  );

  app.delete<{ Params: { id: string } }>('/kill-switches/:id', { schema: { params: idParams } }, async (request) => {
    await killSwitches.delete(request.params.id).catch((err: unknown) => {
      if (err instanceof RecordNotFound) throw new GatewayError('not_found', err.message);
      throw err;
    });
    return { id: request.params.id, object: 'kill_switch', deleted: true };
  });
}
