/**
 * Signed webhooks: budget alerts and alert rules are sent by {@link WebhookSender}; job results
 * (src/jobs/webhooks.ts) are signed with {@link signWebhook}. Each delivery is a POST of a JSON
 * body with:
 *   x-tollgate-event:      the event type, e.g. `budget.threshold`
 *   x-tollgate-timestamp:  unix seconds when it was signed
 *   x-tollgate-signature:  `v1=` + hex HMAC-SHA256(secret, `${timestamp}.${body}`)
 * Receivers recompute the HMAC over the raw body and reject stale timestamps (docs/API.md has a
 * verification snippet). Deliveries are retried with backoff; failures are logged, never thrown.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { request } from 'undici';
import type { Logger } from './logger.js';

export interface WebhookTarget {
  url: string;
  secret: string;
  timeoutMs?: number;
  maxAttempts?: number;
}

export function signWebhook(secret: string, timestamp: number, body: string): string {
  return `v1=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

/** Verifies a delivery: signature over the raw body, and a timestamp at most `toleranceSec` old. */
export function verifyWebhook(
  secret: string,
  headers: { timestamp: string | undefined; signature: string | undefined },
  body: string,
  toleranceSec = 300,
  now: number = Date.now(),
): boolean {
  const ts = Number(headers.timestamp);
  if (!Number.isInteger(ts) || Math.abs(now / 1000 - ts) > toleranceSec || !headers.signature) return false;
  const expected = Buffer.from(signWebhook(secret, ts, body));
  const given = Buffer.from(headers.signature);
  return expected.length === given.length && timingSafeEqual(expected, given);
}

export class WebhookSender {
  constructor(
    private readonly target: WebhookTarget,
    private readonly log: Logger,
  ) {}

  /** Delivers one event; resolves true once a 2xx answer came back, false after the last failed attempt. */
  async send(event: string, payload: Record<string, unknown>): Promise<boolean> {
    const body = JSON.stringify({ type: event, ...payload });
    const attempts = this.target.maxAttempts ?? 4;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      const timestamp = Math.floor(Date.now() / 1000);
      try {
        const res = await request(this.target.url, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            'user-agent': 'tollgate-webhook/1',
            'x-tollgate-event': event,
            'x-tollgate-timestamp': String(timestamp),
            'x-tollgate-signature': signWebhook(this.target.secret, timestamp, body),
          },
          body,
          signal: AbortSignal.timeout(this.target.timeoutMs ?? 5_000),
        });
        await res.body.dump();
        if (res.statusCode >= 200 && res.statusCode < 300) return true;
        this.log.warn({ event, status: res.statusCode, attempt }, 'webhook delivery refused');
      } catch (err) {
        this.log.warn({ event, err: (err as Error).message, attempt }, 'webhook delivery failed');
      }
      if (attempt < attempts) await new Promise((r) => setTimeout(r, Math.min(30_000, 250 * 4 ** (attempt - 1))));
    }
    this.log.error({ event }, 'webhook not delivered after all attempts');
    return false;
  }
}
