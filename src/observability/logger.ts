/**
 * pino JSON logs (`time` in epoch ms). Secrets stay out by construction: request logs are built
 * field by field (request id, tenant, key id, model, status, latency) and never include headers,
 * prompts, answers or key secrets. (pino's path redaction was measured at ~3% of the gateway's CPU
 * under load for objects that never hold secrets, so it is not used.)
 */
import pino, { type Logger } from 'pino';

export type { Logger };

/**
 * Logs go to stdout through a buffered, asynchronous destination (one write per ~4 KiB, not one
 * syscall per request line); `flushLogs` empties it (start-up, shutdown). A hard crash can lose
 * the last buffered lines: the durable record of a request is the ledger, not the log.
 */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'tollgate' },
    },
    destination ?? (level === 'silent' ? undefined : pino.destination({ dest: 1, sync: false, minLength: 4096 })),
  );
}

/** Writes out buffered log lines now (start-up, shutdown). */
export function flushLogs(log: Logger): void {
  const stream = (log as unknown as Record<symbol, unknown>)[pino.symbols.streamSym] as { flushSync?: () => void } | undefined;
  try {
    stream?.flushSync?.();
  } catch {
    /* nothing buffered, or the stream is not ready yet */
  }
}
