/**
 * The embeddings micro-batcher's metrics (src/providers/embed-batcher.ts), registered on the
 * gateway's registry: requests sent in batches and the upstream calls the batches made.
 */
import { Counter, type Registry } from 'prom-client';

export class EmbedBatchMetrics {
  private readonly requests: Counter;
  private readonly calls: Counter;

  constructor(registry: Registry) {
    const registers = [registry];
    this.requests = new Counter({
      name: 'tollgate_embedding_batched_requests_total',
      help: 'Single-input embedding requests sent upstream in micro-batches (divide by tollgate_embedding_batch_calls_total for the reduction).',
      registers,
    });
    this.calls = new Counter({
      name: 'tollgate_embedding_batch_calls_total',
      help: 'Upstream calls made by embedding micro-batches.',
      registers,
    });
  }

  /** One upstream call carried `size` requests (the batcher's onBatch). */
  batch(size: number): void {
    this.calls.inc();
    this.requests.inc(size);
  }
}
