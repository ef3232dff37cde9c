/**
 * How the Redis adapters (counters, exact and semantic cache stores) run commands: Lua scripts
 * defined as named commands, MULTI and pipeline batches that throw their first error, and
 * closing a connection without hanging on a dead one.
 */
import type { Redis } from 'ioredis';

/** A script defined without `numberOfKeys`: the key count goes first. */
export type ScriptCall = (numKeys: number, ...keysAndArgs: Array<string | Buffer>) => Promise<unknown>;

/**
 * Defines each script as a command of `redis` under its `name` (ioredis sends it by EVALSHA and
 * loads it on NOSCRIPT), and returns their callers by key.
 */
export function defineScripts<K extends string>(redis: Redis, scripts: Record<K, { name: string; lua: string }>): Record<K, ScriptCall> {
  const commands = redis as unknown as Record<string, ScriptCall>;
  const callers = {} as Record<K, ScriptCall>;
  for (const key of Object.keys(scripts) as K[]) {
    const { name, lua } = scripts[key];
    redis.defineCommand(name, { lua });
    callers[key] = (...args) => commands[name]!(...args);
  }
  return callers;
}

/** Runs a MULTI or pipeline; throws the first command error; returns the replies. */
export async function exec(batch: { exec(): Promise<Array<[Error | null, unknown]> | null> }): Promise<unknown[]> {
  const results = await batch.exec();
  if (results === null) throw new Error('redis transaction aborted');
  for (const [err] of results) if (err) throw err;
  return results.map(([, reply]) => reply);
}

/**
 * QUIT (or, with `hard`, drop the connection at once), falling back to a disconnect; resolves
 * once the connection has ended, or after 2 s (a client between reconnection attempts has no
 * socket to close, and may never say 'end').
 */
export async function quit(redis: Redis, hard = false): Promise<void> {
  if (redis.status === 'end') return;
  let timer: NodeJS.Timeout | undefined;
  const ended = new Promise<void>((resolve) => {
    redis.once('end', () => resolve());
    timer = setTimeout(resolve, 2_000);
  });
  if (hard) redis.disconnect();
  else await redis.quit().catch(() => redis.disconnect());
  await ended;
  clearTimeout(timer);
}
