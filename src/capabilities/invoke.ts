/**
 * Calling upstream: the invoke stage (breakers, timeouts, retries, fallback along the chain,
 * embeddings micro-batching) and, around it, escalation to a larger tier when an answer fails
 * its tier's check (src/routing/escalation.ts).
 */
import { EmbedBatchMetrics } from '../providers/embed-batch-metrics.js';
import { EmbedBatcher } from '../providers/embed-batcher.js';
import { invokeStage } from '../pipeline/stages/invoke.js';
import { escalation } from '../routing/escalation.js';
import type { Router } from '../routing/router.js';
import type { Capability } from './capability.js';
import type { Core } from './core.js';

export function invokeCapability(core: Core, deps: { router: Router }): Capability {
  const { config, opts } = core;
  const batchMetrics = new EmbedBatchMetrics(core.metrics.registry);
  const embedBatcher = new EmbedBatcher(config.embeddings.batching, opts.embedBatchTimer, (size) => batchMetrics.batch(size));
  const invoke = invokeStage({
    resilience: config.resilience,
    breakers: core.breakers,
    metrics: core.metrics,
    embedBatcher,
    ...(opts.random ? { random: opts.random } : {}),
    ...(opts.retrySleep ? { sleep: opts.retrySleep } : {}),
  });
  return {
    name: 'invoke',
    stages: {
      escalate: escalation(deps.router, config.resilience.deadlineMs),
      invoke: (ctx) => invoke(ctx), // the innermost stage: nothing runs after it
    },
  };
}
