/** `tollgate start`: serve the gateway until SIGINT/SIGTERM. */
import type { BootstrapResult } from '../auth/key-service.js';
import type { Config, RateLimit } from '../config/schema.js';
import { createGateway } from '../main.js';
import { flushLogs } from '../observability/logger.js';

/** The first question the banner's curl line asks (temperature 0: cacheable, so asking again is a hit). */
const FIRST_QUESTION = 'In one sentence: what does an AI gateway do?';

/** "300 requests and 500,000 tokens a minute per key" from a tier's limits, or undefined without any. */
function describeLimits(limits: { tenant?: RateLimit | undefined; key?: RateLimit | undefined }): string | undefined {
  const parts: string[] = [];
  for (const scope of ['key', 'tenant'] as const) {
    const l = limits[scope];
    const what = [
      l?.requestsPerMinute !== undefined ? `${l.requestsPerMinute.toLocaleString('en-US')} requests` : undefined,
      l?.tokensPerMinute !== undefined ? `${l.tokensPerMinute.toLocaleString('en-US')} tokens` : undefined,
    ].filter(Boolean);
    if (what.length) parts.push(`${what.join(' and ')} a minute per ${scope}`);
  }
  return parts.length ? parts.join(', ') : undefined;
}

/**
 * What the first start prints: the keys (once), a curl line for the tiered `auto` route when the
 * config has one (else the first chat model), the dashboard, and the demo tier's limits.
 */
export function bootstrapBanner(result: BootstrapResult, baseUrl: string, config?: Config): string {
  const autoRoute = config && Object.keys(config.routes).includes('auto');
  const firstChat = config ? Object.entries(config.models).find(([, m]) => m.type === 'chat')?.[0] : 'sim-small';
  const model = autoRoute ? 'auto' : (firstChat ?? 'sim-small');
  const body = JSON.stringify({ model, temperature: 0, messages: [{ role: 'user', content: FIRST_QUESTION }] });
  const lines = [
    '',
    'Tollgate created your first keys. They are shown ONCE and stored only as hashes:',
    `  admin key (for /admin/v1 and the dashboard): ${result.adminKey.secret}`,
    `  demo API key (tenant "${result.tenant.id}"): ${result.demoKey.secret}`,
    '',
    autoRoute
      ? 'Try it: model "auto" answers from the cache, else from the cheapest tier that fits the question (sim-small, sim-medium, sim-large):'
      : 'Try it:',
    `  curl -i ${baseUrl}/v1/chat/completions -H "Authorization: Bearer ${result.demoKey.secret}" -H "Content-Type: application/json" -d '${body}'`,
    '  Send it twice: the second answer comes from the cache (x-tollgate-cache: hit, x-tollgate-cost-usd: 0).',
    '',
    `Dashboard: ${baseUrl}/dashboard (sign in with the admin key)`,
    'Spend so far: npx tollgate usage',
  ];
  const tier = config?.tiers[result.tenant.tier];
  if (tier) {
    const limits = describeLimits(tier.limits);
    const daily = tier.budgets.tenant?.dailyUsd;
    const parts = [limits, daily !== undefined ? `a budget of $${daily.toFixed(2)} a day per tenant (402 once spent)` : undefined].filter(Boolean);
    if (parts.length) lines.push(`Limits of the "${result.tenant.tier}" tier: ${parts.join('; ')}.`);
  }
  lines.push('');
  return lines.join('\n');
}

export async function startCommand(config: Config, configPath: string | undefined): Promise<void> {
  const gateway = await createGateway(config);
  // Handlers first: a SIGTERM that arrives once the URL is printed (a supervisor, a test) must
  // close the gateway cleanly, not find the default action (exit at once, spool not flushed).
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
  const boot = config.auth.bootstrap ? await gateway.bootstrap() : undefined;
  const url = await gateway.listen();
  if (boot) process.stdout.write(`${bootstrapBanner(boot, url, config)}\n`);
  gateway.log.info(
    {
      url,
      dashboard: `${url}/dashboard`,
      config: configPath ?? '(built-in defaults)',
      storage: config.storage.kind,
      models: gateway.catalog.list().map((m) => m.name),
      routes: Object.keys(config.routes),
    },
    'tollgate listening',
  );
  flushLogs(gateway.log);
}
