/** The authenticate stage, the first: API key -> tenant, tier, allowed models, end user. Fails with 401. (Job runs arrive authenticated.) */
import type { Authenticator } from '../../auth/authenticator.js';
import { extractKey } from '../../auth/keys.js';
import { GatewayError } from '../../errors.js';
import type { RequestContext } from '../context.js';

export function authenticateStage(opts: { authenticator: Authenticator }) {
  return async function authenticate(ctx: RequestContext): Promise<void> {
    if (ctx.auth) return; // a job run: its worker authenticated the submitting key by id
    const auth = await opts.authenticator.authenticate(extractKey(ctx.headers));
    if (auth.kind !== 'api') {
      throw new GatewayError('invalid_api_key', 'An admin key cannot call the model API; use an API key.');
    }
    ctx.auth = auth;
    const user = typeof ctx.body.user === 'string' && ctx.body.user !== '' ? ctx.body.user : null;
    ctx.endUser = auth.userId ?? user;
  };
}
