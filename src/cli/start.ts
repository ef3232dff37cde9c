/** `tollgate start`: serve the gateway until SIGINT/SIGTERM. */
import type { BootstrapResult } from '../auth/key-service.js';
import type { Config } from '../config/schema.js';
import { createGateway } from '../main.js';
import { flushLogs } from '../observability/logger.js';

export function bootstrapBanner(result: BootstrapResult, baseUrl: string): string {
  const body = `{"model":"sim-small","messages":[{"role":"user","content":"Hello!"}]}`;
  return [
    '',
    'Tollgate created your first keys. They are shown ONCE and stored only as hashes:',
    `  admin key (for /admin/v1): ${result.adminKey.secret}`,
    `  demo API key (tenant "${result.tenant.id}"): ${result.demoKey.secret}`,
    '',
    'Try it:',
    `  curl ${baseUrl}/v1/chat/completions -H "Authorization: Bearer ${result.demoKey.secret}" -H "Content-Type: application/json" -d '${body}'`,
    '',
  ].join('\n');
}

export async function startCommand(config: Config, configPath: string | undefined): Promise<void> {
  const gateway = await createGateway(config);
  const boot = config.auth.bootstrap ? await gateway.bootstrap() : undefined;
  const url = await gateway.listen();
  if (boot) process.stdout.write(`${bootstrapBanner(boot, url)}\n`);
  gateway.log.info(
    { url, config: configPath ?? '(built-in defaults)', storage: config.storage.kind, models: gateway.catalog.list().map((m) => m.name) },
    'tollgate listening',
  );
  flushLogs(gateway.log);

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    gateway.log.info({ signal }, 'shutting down');
    gateway.close().then(
      async () => {
        flushLogs(gateway.log);
        process.exit(0);
      },
      (err: unknown) => {
        gateway.log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
}
