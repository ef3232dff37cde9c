/**
 * The core every capability stands on: config, logger, storage (its change bus included), the
 * ledger writer, providers, the model catalog, circuit breakers, the metrics registry and the
 * shared counters. Opened first by the composition root (src/main.ts), closed last.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { SpanExporter } from '@opentelemetry/sdk-trace-base';
import type { Config } from '../config/schema.js';
import type { UploadObserver } from '../jobs/upload-guard.js';
import { LedgerMetrics } from '../metering/ledger-metrics.js';
import { LedgerWriter } from '../metering/ledger-writer.js';
import { type Logger, createLogger } from '../observability/logger.js';
import { GatewayMetrics } from '../observability/metrics.js';
import { WebhookSender } from '../observability/webhook.js';
import type { RequestContext } from '../pipeline/context.js';
import type { BatchTimer } from '../providers/embed-batcher.js';
import { ProviderRegistry } from '../providers/registry.js';
import { BreakerRegistry } from '../resilience/circuit-breaker.js';
import { ModelCatalog } from '../routing/catalog.js';
import { type Storage, openStorage } from '../storage/index.js';
import type { Counters } from '../storage/types.js';

/** Test seams of a gateway (all optional; production passes none but `logger`). */
export interface GatewayOptions {
  logger?: Logger;
  /** Random source for backoff jitter and verified caching's draws (tests). */
  random?: () => number;
  /** How the invoke stage waits before a retry (tests: record the waits instead of timing them). */
  retrySleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  /** The drift and abuse detectors' clock (tests: their windows without waiting). */
  signalsClock?: () => number;
  /** The in-memory exact cache's clock for TTLs, ms (embedded mode; tests: expiry without waiting). */
  cacheClock?: () => number;
  /** How embeddings batches' windows are timed (tests: batches that leave only when full, or when told). */
  embedBatchTimer?: BatchTimer;
  /** Where spans go instead of OTLP when `tracing.enabled` (tests: an in-memory exporter). */
  spanExporter?: SpanExporter;
  /** Told when an upload starts and ends, with the bytes it held in memory (tests). */
  uploadObserver?: UploadObserver;
  /** Called after each request's answer is written, before it settles (tests: a crash at that point). */
  afterRespond?: (ctx: RequestContext) => void;
}

export interface Core {
  readonly config: Config;
  readonly opts: GatewayOptions;
  readonly log: Logger;
  readonly storage: Storage;
  readonly ledger: LedgerWriter;
  readonly providers: ProviderRegistry;
  readonly catalog: ModelCatalog;
  readonly breakers: BreakerRegistry;
  /** Deployments whose breaker is open now (alert rules read it). */
  readonly openBreakers: ReadonlySet<string>;
  readonly metrics: GatewayMetrics;
  /** Rate-limit and budget counters: shared in distributed mode (with the failure policy of failover-counters.ts). */
  readonly counters: Counters;
  /** Where budget alerts and alert rules are sent (`alerts.webhook`; undefined: nowhere). */
  readonly alertWebhook: WebhookSender | undefined;
  /** This process, among the gateway's processes: `host:pid:random`. */
  readonly nodeId: string;
  readonly distributed: boolean;
  /** Whether close() has begun. */
  readonly shuttingDown: boolean;
  /** Frees what the core holds (after every capability has closed). */
  close(): Promise<void>;
}

/** Shared counters with the failure policy of src/storage/failover-counters.ts, counted and logged. */
async function failover(shared: Counters, metrics: GatewayMetrics, log: Logger): Promise<Counters> {
  const { FailoverCounters } = await import('../storage/failover-counters.js');
  const { MemoryCounters } = await import('../storage/memory/counters.js');
  let lastLog = 0;
  return new FailoverCounters(shared, new MemoryCounters(), {
    onFailure(operation, err) {
      metrics.counterStoreFailures.inc({ operation });
      if (Date.now() - lastLog > 5_000) {
        lastLog = Date.now();
        log.error({ err, operation }, 'shared counter store unreachable: rate limits run per process, budgets refuse');
      }
    },
  });
}

export async function openCore(config: Config, opts: GatewayOptions): Promise<Core & { shuttingDown: boolean }> {
  const log = opts.logger ?? createLogger(config.logging.level);
  const distributed = config.storage.kind === 'distributed';
  const storage = await openStorage(config);
  const ledger = new LedgerWriter({
    ledger: storage.ledger,
    spoolDir: join(storage.localDir, 'spool'),
    log,
    flushIntervalMs: config.metering.ledgerFlushMs,
    // A PostgreSQL outage: retry at least every 2 s, so the spool drains within seconds of its end.
    ...(distributed ? { maxRetryDelayMs: 2_000 } : {}),
  });
  await ledger.start(); // replays what a crash left behind
  const providers = await ProviderRegistry.create(config);
  const catalog = new ModelCatalog(config, providers);
  const metrics = new GatewayMetrics({ tenantLabels: config.metrics.tenantLabels });
  new LedgerMetrics(metrics.registry, { pending: () => ledger.pending });
  // Every deployment's breaker is in the metrics from the start (closed), not from its first change.
  for (const m of catalog.list()) for (const d of m.deployments) metrics.setBreakerState(d.id, 'closed');
  const openBreakers = new Set<string>();
  const breakers = new BreakerRegistry(config.resilience.breaker, Date.now, (deployment, from, to) => {
    if (to === 'open') openBreakers.add(deployment);
    else openBreakers.delete(deployment);
    metrics.breakerTransition(deployment, from, to);
    log.warn({ deployment, from, to }, 'circuit breaker state change');
  });
  const counters = distributed ? await failover(storage.counters, metrics, log) : storage.counters;
  return {
    config,
    opts,
    log,
    storage,
    ledger,
    providers,
    catalog,
    breakers,
    openBreakers,
    metrics,
    counters,
    alertWebhook: config.alerts.webhook ? new WebhookSender(config.alerts.webhook, log) : undefined,
    nodeId: `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`,
    distributed,
    shuttingDown: false,
    async close() {
      await ledger.close();
      await providers.close();
      await storage.close();
    },
  };
}
