/**
 * pino JSON logs. Secrets are redacted by path as a second line of defence; the first is that
 * request logs are built field by field (request id, tenant, model, status, latency) and never
 * include headers, prompts or answers.
 */
import pino, { type Logger } from 'pino';

export type { Logger };

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'tollgate' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: {
        paths: ['*.authorization', '*.headers.authorization', '*.apiKey', '*.api_key', '*.secret', '*["api-key"]', '*["x-api-key"]'],
        censor: '[redacted]',
      },
    },
    destination,
  );
}
