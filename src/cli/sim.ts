/** `tollgate sim`: the simulator as a standalone OpenAI-compatible server. */
import type { Config, FaultConfig, SimModelConfig } from '../config/schema.js';
import { DEFAULT_SIM_MODELS } from '../config/defaults.js';
import { startSimServer } from '../providers/simulated/server.js';

export interface SimFlags {
  host: string;
  port: number;
  /** Override every model's latency: median time to first token (ms); 0 = instant. */
  latencyMs?: number;
  tokensPerSecond?: number;
  /** e.g. "500=0.05,429=0.02" */
  errorRate?: string;
}

export function parseErrorRate(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const part of text.split(',').filter(Boolean)) {
    const [status, rate] = part.split('=');
    const r = Number(rate);
    if (!status || !/^[45]\d\d$/.test(status) || !Number.isFinite(r) || r < 0 || r > 1) {
      throw new Error(`--error-rate: '${part}' is not STATUS=RATE (e.g. 500=0.05)`);
    }
    out[status] = r;
  }
  return out;
}

export async function simCommand(config: Config, flags: SimFlags): Promise<void> {
  const simProvider = Object.values(config.providers).find((p) => p.kind === 'simulated');
  let models: Record<string, SimModelConfig> = { ...(simProvider?.kind === 'simulated' && simProvider.models ? simProvider.models : DEFAULT_SIM_MODELS) };
  if (flags.latencyMs !== undefined || flags.tokensPerSecond !== undefined) {
    models = Object.fromEntries(
      Object.entries(models).map(([name, m]) => [
        name,
        {
          ...m,
          ...(flags.latencyMs !== undefined ? { ttftMs: { median: flags.latencyMs, p95: flags.latencyMs * 2 } } : {}),
          ...(flags.tokensPerSecond !== undefined ? { tokensPerSecond: flags.tokensPerSecond } : {}),
        },
      ]),
    );
  }
  const faults: Partial<FaultConfig> = simProvider?.kind === 'simulated' ? { ...simProvider.faults } : {};
  if (flags.errorRate) faults.errorRate = parseErrorRate(flags.errorRate);
  const server = await startSimServer({ host: flags.host, port: flags.port, models, faults });
  process.stdout.write(`tollgate sim listening on ${server.url} (models: ${Object.keys(models).join(', ')})\n`);
  const stop = () => void server.close().then(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
