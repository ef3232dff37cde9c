/**
 * What happens to one simulated request: it succeeds, answers with an HTTP error, hangs, has its
 * connection reset, or breaks mid-stream. Outcomes are drawn from the fault rates, or taken from a
 * script queued by a test.
 */
import { z } from 'zod';
import type { FaultConfig } from '../../config/schema.js';

export type SimOutcome =
  | { kind: 'ok' }
  | { kind: 'error'; status: number; retryAfterSeconds?: number }
  | { kind: 'hang' }
  | { kind: 'reset' }
  | { kind: 'break'; afterChunks: number };

/** Validates scripted outcomes (the control API's `POST /_sim/script`). */
export const simOutcomeSchema: z.ZodType<SimOutcome> = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('ok') }).strict(),
  z
    .object({
      kind: z.literal('error'),
      status: z.number().int().min(400).max(599),
      retryAfterSeconds: z.number().nonnegative().optional(),
    })
    .strict(),
  z.object({ kind: z.literal('hang') }).strict(),
  z.object({ kind: z.literal('reset') }).strict(),
  z.object({ kind: z.literal('break'), afterChunks: z.number().int().nonnegative() }).strict(),
]);

const OK: SimOutcome = { kind: 'ok' };

/**
 * Draws one outcome from the fault rates with a single uniform draw: errors (by ascending
 * status), then hang, reset and mid-stream break. Breaks only apply to streams; a draw that lands
 * on one for a non-streaming request succeeds.
 */
export function drawOutcome(faults: FaultConfig, random: () => number, stream: boolean): SimOutcome {
  const statuses = Object.keys(faults.errorRate);
  if (statuses.length === 0 && faults.hangRate === 0 && faults.resetRate === 0 && faults.midStreamBreakRate === 0) {
    return OK; // the benchmark's path: no draw at all
  }
  const u = random();
  let acc = 0;
  for (const status of statuses.sort()) {
    acc += faults.errorRate[status] ?? 0;
    if (u < acc) return { kind: 'error', status: Number(status) };
  }
  acc += faults.hangRate;
  if (u < acc) return { kind: 'hang' };
  acc += faults.resetRate;
  if (u < acc) return { kind: 'reset' };
  acc += faults.midStreamBreakRate;
  if (u < acc && stream) return { kind: 'break', afterChunks: 1 + Math.floor(random() * 4) };
  return OK;
}

/** An error the simulator answers with, in the terms of OpenAI's error envelope. */
export class SimError extends Error {
  readonly status: number;
  readonly type: string;
  readonly code: string | null;
  readonly param: string | null;
  /** Sent as Retry-After (seconds) and retry-after-ms. */
  readonly retryAfterSeconds: number | undefined;

  constructor(
    status: number,
    message: string,
    opts: { type?: string; code?: string | null; param?: string | null; retryAfterSeconds?: number } = {},
  ) {
    super(message);
    this.name = 'SimError';
    this.status = status;
    this.type = opts.type ?? errorType(status);
    this.code = opts.code ?? null;
    this.param = opts.param ?? null;
    this.retryAfterSeconds = opts.retryAfterSeconds;
  }

  /** OpenAI's error body. */
  toJSON(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

function errorType(status: number): string {
  if (status === 401) return 'authentication_error';
  if (status === 403) return 'permission_error';
  if (status === 429) return 'rate_limit_error';
  if (status >= 500) return 'server_error';
  return 'invalid_request_error';
}

const MESSAGES: Record<number, [message: string, code: string]> = {
  400: ['Bad request (simulated fault).', 'invalid_request'],
  401: ['Incorrect API key provided (simulated fault).', 'invalid_api_key'],
  403: ['Permission denied (simulated fault).', 'permission_denied'],
  404: ['Not found (simulated fault).', 'not_found'],
  408: ['Request timed out (simulated fault).', 'timeout'],
  409: ['Conflict (simulated fault).', 'conflict'],
  429: ['Rate limit reached for requests (simulated fault).', 'rate_limit_exceeded'],
  500: ['The server had an error while processing your request (simulated fault).', 'server_error'],
  502: ['Bad gateway (simulated fault).', 'bad_gateway'],
  503: ['The engine is currently overloaded, please try again later (simulated fault).', 'overloaded'],
  504: ['Gateway timeout (simulated fault).', 'timeout'],
};

/**
 * The error an `error` outcome answers with. 429 and 503 carry a Retry-After (the outcome's own,
 * else the fault config's); other statuses only when the outcome names one.
 */
export function outcomeError(outcome: { status: number; retryAfterSeconds?: number }, faults: FaultConfig): SimError {
  const [message, code] = MESSAGES[outcome.status] ?? [`Simulated HTTP ${outcome.status}.`, 'simulated_error'];
  const retryAfterSeconds =
    outcome.retryAfterSeconds ??
    (outcome.status === 429 || outcome.status === 503 ? faults.retryAfterSeconds : undefined);
  return new SimError(outcome.status, message, { code, retryAfterSeconds });
}
