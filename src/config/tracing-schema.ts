/**
 * The `tracing` section of the config: OpenTelemetry traces exported over OTLP/HTTP. Off by
 * default; see src/observability/tracing.ts and docs/CONFIG.md#tracing.
 */
import { z } from 'zod';
import { httpUrl, positiveInt } from './primitives.js';

export const tracingSchema = z
  .object({
    /** Off: no tracer, no spans, no per-request work (the SDK is not even loaded). */
    enabled: z.boolean().default(false),
    /** `service.name` of the spans' resource. */
    serviceName: z.string().min(1).default('tollgate'),
    /** Share of new traces recorded (0..1); a request with a `traceparent` follows its caller's decision. */
    sampleRatio: z.number().min(0).max(1).default(1),
    /**
     * Where spans go: `otlp` (the collector below) or `none` (spans are made - the trace id still
     * reaches the client and the request log - but sent nowhere; measures tracing's own cost).
     */
    exporter: z.enum(['otlp', 'none']).default('otlp'),
    otlp: z
      .object({
        /** The collector's OTLP/HTTP traces endpoint (spans are sent as JSON). */
        url: httpUrl('url').default('http://127.0.0.1:4318/v1/traces'),
        /** Extra headers sent with each export (e.g. an API key of the tracing backend; use ${ENV}). */
        headers: z.record(z.string()).default({}),
        /** One export request's timeout. */
        timeoutMs: positiveInt.default(10_000),
      })
      .strict()
      .default({}),
    /** The batching span processor: spans are queued and exported in the background. */
    batch: z
      .object({
        /** Spans kept waiting for export; beyond it new spans are dropped (never blocks requests). */
        maxQueueSize: positiveInt.default(2_048),
        maxExportBatchSize: positiveInt.default(512),
        /** How often the queue is exported. */
        scheduledDelayMs: positiveInt.default(5_000),
      })
      .strict()
      .refine((b) => b.maxExportBatchSize <= b.maxQueueSize, { message: 'maxExportBatchSize must be <= maxQueueSize', path: ['maxExportBatchSize'] })
      .default({}),
  })
  .strict();

export type TracingConfig = z.infer<typeof tracingSchema>;
