/**
 * Who calls a /v1 route other than the pipeline's (jobs, files, batches, cache, the
 * `Prefer: respond-async` shortcut): an API key (an admin key is refused), not switched off by a
 * kill switch.
 */
import type { FastifyRequest } from 'fastify';
import type { AuthInfo, Authenticator } from '../../auth/authenticator.js';
import { extractKey } from '../../auth/keys.js';
import { GatewayError } from '../../errors.js';
import type { KillSwitches } from '../../metering/kill-switches.js';

/** The caller of a /v1 route: an API key (admin keys refused), not switched off. */
export async function apiCaller(
  request: FastifyRequest,
  authenticator: Pick<Authenticator, 'authenticate'>,
  killSwitches: Pick<KillSwitches, 'checkAccess'>,
): Promise<AuthInfo> {
  const auth = await authenticator.authenticate(extractKey(request.headers));
  if (auth.kind !== 'api') throw new GatewayError('invalid_api_key', 'An admin key cannot call the model API; use an API key.');
  killSwitches.checkAccess(auth);
  return auth;
}
