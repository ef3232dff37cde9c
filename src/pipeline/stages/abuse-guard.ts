/**
 * The abuse guard stage (optional, right after authenticate): refuses a key or end user that the abuse
 * detector throttles (`abuse.action: throttle`) with 429 abuse_throttled, Retry-After and the
 * reason. An in-memory look-up, no I/O; per process (see src/observability/abuse.ts).
 */
import type { AbuseDetector } from '../../observability/abuse.js';
import type { RequestContext } from '../context.js';

export function abuseGuardStage(opts: { abuse: Pick<AbuseDetector, 'checkThrottle'> }) {
  const { abuse } = opts;
  return function abuseGuard(ctx: RequestContext): void {
    if (ctx.auth) abuse.checkThrottle(ctx.auth, ctx.endUser);
  };
}
