/**
 * How a failed webhook delivery is told: a refusal by the delivery policy (WebhookPolicyError,
 * raised inside the connection's DNS lookup), and the short error the delivery log shows the
 * tenant, with the address the name resolved to left out.
 */

/** A delivery refused by the policy (the error message is the reason). */
export class WebhookPolicyError extends Error {
  override readonly name = 'WebhookPolicyError';
  /** The refused address, for the operator's log only (never the delivery log a tenant reads). */
  constructor(
    message: string,
    readonly address?: string,
  ) {
    super(message);
  }
}

const MAX_ERROR_LENGTH = 200;

export function policyErrorOf(err: unknown): WebhookPolicyError | undefined {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (e instanceof WebhookPolicyError) return e;
  }
  return undefined;
}

/**
 * The error as the delivery log shows it (the tenant reads it): a policy refusal as it is
 * worded, anything else as its code and message with the address connected to left out
 * ("connect ECONNREFUSED 10.0.0.5:443" tells what the name resolved to).
 */
export function shortError(err: unknown): string {
  const refused = policyErrorOf(err);
  if (refused) return refused.message.slice(0, MAX_ERROR_LENGTH);
  const e = err as { code?: unknown; message?: unknown; cause?: { code?: unknown; message?: unknown } };
  const code = typeof e?.code === 'string' ? e.code : typeof e?.cause?.code === 'string' ? e.cause.code : '';
  let message = typeof e?.message === 'string' && e.message !== '' ? e.message : String(err);
  for (let x: unknown = err, depth = 0; x instanceof Error && depth < 5; x = x.cause, depth++) {
    const address = (x as { address?: unknown }).address;
    if (typeof address === 'string' && address !== '') {
      const port = (x as { port?: unknown }).port;
      message = message.split(port !== undefined ? `${address}:${String(port)}` : address).join('(address withheld)').split(address).join('(address withheld)');
    }
  }
  const text = code && !message.includes(code) ? `${code}: ${message}` : message;
  return text.slice(0, MAX_ERROR_LENGTH);
}
