/** Config of alert rules (`alerts.rules`): see docs/CONFIG.md and src/observability/alerts.ts. */
import { z } from 'zod';

const name = z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'must be 1-64 letters, digits, dots, dashes or underscores');
const seconds = z.number().int().min(0).max(86_400);
const common = {
  name,
  /** How long the condition must hold before the alert fires, and be gone before it resolves. */
  forSeconds: seconds.default(0),
  /** Passed through to the webhook (e.g. page vs ticket). */
  severity: z.enum(['info', 'warning', 'critical']).default('warning'),
};
/** Rules on the live request statistics (every process's, merged in distributed mode). */
const traffic = {
  /** A tier name (a tiered route's tier, or `none` for plain models); omitted: one alert per tier seen. */
  tier: z.string().min(1).optional(),
  /** The window the statistic is computed over. */
  windowSeconds: z.number().int().min(10).max(3_600).default(300),
  /** Fewer requests than this in the window: no verdict (the alert neither fires nor resolves). */
  minRequests: z.number().int().min(1).default(20),
};

export const alertRuleSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('latency_p95'), ...common, ...traffic, /** Milliseconds. */ thresholdMs: z.number().positive() }).strict(),
  z.object({ type: z.literal('error_rate'), ...common, ...traffic, /** Fraction of requests answered 5xx, 0-1. */ threshold: z.number().gt(0).max(1) }).strict(),
  z.object({ type: z.literal('budget'), ...common, /** Fraction of a budget used, 0-1. */ threshold: z.number().gt(0).max(1) }).strict(),
  z.object({ type: z.literal('drift'), ...common, /** A drift score (PSI for length and script, cosine distance for the centroid). */ threshold: z.number().positive() }).strict(),
  z.object({ type: z.literal('abuse'), ...common, /** Only flags of this kind; omitted: any kind. */ kind: z.string().min(1).optional() }).strict(),
  z.object({ type: z.literal('breaker_open'), ...common }).strict(),
]);

export type AlertRule = z.infer<typeof alertRuleSchema>;

export const alertRulesSchema = z
  .array(alertRuleSchema)
  .max(100)
  .default([])
  .superRefine((rules, ctx) => {
    const seen = new Set<string>();
    rules.forEach((r, i) => {
      if (seen.has(r.name)) ctx.addIssue({ code: z.ZodIssueCode.custom, path: [i, 'name'], message: `duplicate rule name '${r.name}'` });
      seen.add(r.name);
    });
  });
