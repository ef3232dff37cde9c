/**
 * The module contract: what one capability (auth, kill switches, routing, metering, cache, jobs,
 * signals, alerts, the dashboard...) brings to the gateway. The composition root (src/main.ts)
 * builds the list of capabilities, hands their stages and settle steps to the pipeline
 * (src/pipeline/pipeline.ts orders them), registers their routes, subscribes their bus
 * messages, starts them once the gateway listens and stops them in reverse order.
 *
 * A capability is built by a factory in this folder, `xxxCapability(core, deps)`: it constructs
 * its services (with every callback as a constructor option: nothing is assigned afterwards),
 * registers its own metrics on `core.metrics.registry`, and returns this object plus the
 * services other capabilities or the Gateway object use. See docs/ARCHITECTURE.md, "Adding a
 * capability".
 */
import type { FastifyInstance, FastifyPluginAsync, FastifyPluginOptions } from 'fastify';
import type { Middleware, SettleStep, SettleStepName, StageName } from '../pipeline/pipeline.js';
import type { BusMessage } from '../storage/change-bus.js';

/** A Fastify plugin with its options: `plugin(app, options)` once registered. */
export interface Routes {
  register(app: FastifyInstance): Promise<void>;
}

/** Binds a plugin to its typed options (checked here, at the capability that builds them). */
export function routes<O extends FastifyPluginOptions>(plugin: FastifyPluginAsync<O>, options: O): Routes {
  return {
    async register(app) {
      await app.register(plugin, options);
    },
  };
}

export interface Capability {
  readonly name: string;
  /** Its pipeline stages, by the slot they fill (src/pipeline/pipeline.ts STAGES). */
  readonly stages?: Partial<Record<StageName, Middleware>>;
  /** Its steps after each response (src/pipeline/pipeline.ts SETTLE_STEPS). */
  readonly settle?: Partial<Record<SettleStepName, SettleStep>>;
  /** Routes registered at the root (the OpenAI-compatible API, /dashboard, /metrics...). */
  readonly routes?: readonly Routes[];
  /** Routes under /admin/v1, behind the admin-key check. */
  readonly adminRoutes?: readonly Routes[];
  /** Change-bus messages it handles, by kind (each checks what it receives: another process sent it). */
  readonly messages?: Readonly<Record<string, (message: BusMessage) => void>>;
  /** Once the gateway listens: timers, workers, pollers. */
  start?(): void;
  /**
   * Shutdown, first phase (all capabilities at once, the HTTP server closing meanwhile): stop
   * taking work and let the work in progress end, within `graceMs`.
   */
  drain?(graceMs: number): Promise<void>;
  /**
   * Shutdown, second phase, once every request has settled, in reverse order of the list: write
   * what is buffered and free what it holds, waiting at most `graceMs` for work of its own
   * still running. Never throws (a failure is logged).
   */
  close?(graceMs: number): Promise<void>;
}
