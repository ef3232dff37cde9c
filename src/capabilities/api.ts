/**
 * The OpenAI-compatible API: /v1/chat/completions, /v1/embeddings (through the pipeline, or
 * queued as a job with `Prefer: respond-async`) and /v1/models. Its SSE answers still open at
 * the end of a shutdown's grace period end with a `shutting_down` error event.
 */
import type { Authenticator } from '../auth/authenticator.js';
import { GatewayError } from '../errors.js';
import { openaiRoutes } from '../http/routes/openai.js';
import { OpenStreams } from '../http/sink.js';
import type { JobService } from '../jobs/service.js';
import type { KillSwitches } from '../metering/kill-switches.js';
import type { Pipeline } from '../pipeline/pipeline.js';
import type { Router } from '../routing/router.js';
import { type Capability, routes } from './capability.js';
import type { Core } from './core.js';

export interface ApiCapability extends Capability {
  /** Ends the SSE answers still open with a `shutting_down` error event (the grace period is over). */
  cutStreams(): Promise<void>;
}

export function apiCapability(
  core: Core,
  deps: { pipeline: Pipeline; authenticator: Authenticator; killSwitches: KillSwitches; router: Router; jobs: JobService },
): ApiCapability {
  const streams = new OpenStreams(() => core.shuttingDown);
  return {
    name: 'api',
    routes: [
      routes(openaiRoutes, {
        pipeline: deps.pipeline,
        authenticator: deps.authenticator,
        catalog: core.catalog,
        log: core.log,
        killSwitches: deps.killSwitches,
        routes: deps.router.list(),
        jobs: deps.jobs,
        streams,
      }),
    ],
    cutStreams: () =>
      streams.cutAll(new GatewayError('shutting_down', 'The gateway is shutting down: the stream was cut at the end of its grace period. Retry the request.')),
  };
}
