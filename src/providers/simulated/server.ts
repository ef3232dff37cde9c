/**
 * A standalone OpenAI-compatible HTTP server around a SimEngine, on bare node:http. It is the
 * benchmarks' upstream and the target of the openai-compatible adapter's tests, so it stays lean:
 * keep-alive on, no per-request logging, no timers when latency is 0.
 *
 * Routes: POST /v1/chat/completions (JSON and SSE), POST /v1/embeddings, GET /v1/models, and
 * the control API under /_sim/ (see control.ts).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DEFAULT_SIM_MODELS } from '../../config/defaults.js';
import type { FaultConfig, SimModelConfig } from '../../config/schema.js';
import { generationSteps, sseSerializer, toCompletion, toStreamSteps, type ChatPlan } from './chat.js';
import { SimEngine, type SimAttempt, type SimRequestTracker } from './engine.js';
import { handleControl } from './control.js';
import { JSON_TYPE, readJson, sendError, sendJson } from './http-io.js';
import { SimError } from './outcomes.js';
import { delay } from './timing.js';

export interface SimServerOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0: a free port. */
  port?: number;
  /** Default: the built-in sim-small, sim-medium, sim-large and sim-embed. */
  models?: Record<string, SimModelConfig>;
  faults?: Partial<FaultConfig>;
  /** Source of randomness for faults and latency. */
  random?: () => number;
}

export interface SimServer {
  /** Base URL for an OpenAI client, e.g. http://127.0.0.1:40123/v1 */
  url: string;
  port: number;
  engine: SimEngine;
  /** Stops listening and drops every connection (hanging requests included). */
  close(): Promise<void>;
}

/** An AbortSignal that fires when the client goes away before the response is complete. */
function disconnectSignal(res: ServerResponse): AbortSignal {
  const ac = new AbortController();
  res.once('close', () => {
    if (!res.writableFinished) ac.abort(new Error('client disconnected'));
  });
  return ac.signal;
}

/** Destroys the socket once `data` has been handed to it: a response cut off mid-body. */
function writeThenDestroy(req: IncomingMessage, res: ServerResponse, data: string): void {
  if (data) res.write(data, () => req.socket.destroy());
  else {
    res.flushHeaders();
    setImmediate(() => req.socket.destroy());
  }
}

const DONE = 'data: [DONE]\n\n';
const SSE_HEADERS = { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' };

/**
 * Handles the fault outcomes every route shares. Returns the answer to send, or undefined when
 * the request has been dealt with (error answered, socket reset, or left hanging).
 */
function settleFault<T>(
  attempt: SimAttempt<T>,
  req: IncomingMessage,
  res: ServerResponse,
  tracker: SimRequestTracker,
): Extract<SimAttempt<T>, { kind: 'answer' }> | undefined {
  switch (attempt.kind) {
    case 'answer':
      return attempt;
    case 'error':
      tracker.fail();
      sendError(res, attempt.error);
      return undefined;
    case 'reset':
      tracker.fail();
      req.socket.destroy();
      return undefined;
    case 'hang':
      // Never answer; the client's timeout closes the connection.
      res.once('close', () => tracker.abort());
      return undefined;
  }
}

async function handleChat(engine: SimEngine, body: unknown, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const tracker = engine.begin(body);
  const b = (body && typeof body === 'object' ? body : {}) as { stream?: unknown; stream_options?: { include_usage?: unknown } | null };
  const stream = b.stream === true;
  const answer = settleFault(engine.prepareChat(body, stream), req, res, tracker);
  if (!answer) return;
  const signal = disconnectSignal(res);
  try {
    if (stream) await streamChat(answer, b.stream_options?.include_usage === true, req, res, tracker, signal);
    else await answerChat(answer, req, res, tracker, signal);
  } catch (err) {
    if (!signal.aborted) {
      tracker.fail();
      throw err;
    }
    tracker.abort(); // a wait interrupted by the client going away
  }
}

/** Sends a JSON answer, or half of it and a dropped connection when the outcome is a break. */
function sendJsonAnswer(
  req: IncomingMessage,
  res: ServerResponse,
  text: string,
  broken: boolean,
  tracker: SimRequestTracker,
  usage: { prompt_tokens: number; completion_tokens?: number },
): void {
  res.writeHead(200, { 'content-type': JSON_TYPE, 'content-length': Buffer.byteLength(text) });
  if (broken) {
    tracker.fail();
    writeThenDestroy(req, res, text.slice(0, Math.floor(text.length / 2)));
    return;
  }
  res.end(text);
  tracker.complete(usage);
}

type ChatAnswer = Extract<SimAttempt<ChatPlan>, { kind: 'answer' }>;

async function answerChat(answer: ChatAnswer, req: IncomingMessage, res: ServerResponse, tracker: SimRequestTracker, signal: AbortSignal): Promise<void> {
  await delay(answer.ttftMs + generationSteps(answer.answer) * answer.interTokenMs, signal);
  const text = JSON.stringify(toCompletion(answer.answer));
  sendJsonAnswer(req, res, text, answer.breakAfter !== undefined, tracker, answer.answer.usage);
}

async function streamChat(
  answer: ChatAnswer,
  includeUsage: boolean,
  req: IncomingMessage,
  res: ServerResponse,
  tracker: SimRequestTracker,
  signal: AbortSignal,
): Promise<void> {
  await delay(answer.ttftMs, signal);
  const steps = toStreamSteps(answer.answer, includeUsage);
  const sse = sseSerializer(answer.answer, includeUsage);
  res.writeHead(200, SSE_HEADERS);
  if (answer.breakAfter !== undefined) {
    const upTo = Math.min(answer.breakAfter, steps.length);
    let head = '';
    for (let i = 0; i < upTo; i++) {
      const step = steps[i];
      if (!step) break;
      if (step.paced && answer.interTokenMs > 0) {
        if (head) res.write(head);
        head = '';
        await delay(answer.interTokenMs, signal);
      }
      head += sse(step.chunk);
    }
    tracker.fail();
    writeThenDestroy(req, res, head);
    return;
  }
  if (answer.interTokenMs === 0) {
    // Instant streams: one write, no timers.
    let all = '';
    for (const step of steps) all += sse(step.chunk);
    res.end(all + DONE);
    tracker.complete(includeUsage ? answer.answer.usage : undefined);
    return;
  }
  let pending = '';
  for (const step of steps) {
    if (step.paced) {
      if (pending) res.write(pending);
      pending = '';
      await delay(answer.interTokenMs, signal);
    }
    pending += sse(step.chunk);
  }
  res.end(pending + DONE);
  tracker.complete(includeUsage ? answer.answer.usage : undefined);
}

async function handleEmbeddings(engine: SimEngine, body: unknown, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const tracker = engine.begin(body);
  const answer = settleFault(engine.prepareEmbedding(body), req, res, tracker);
  if (!answer) return;
  try {
    await delay(answer.ttftMs, disconnectSignal(res));
  } catch {
    tracker.abort();
    return;
  }
  const text = JSON.stringify(answer.answer);
  sendJsonAnswer(req, res, text, answer.breakAfter !== undefined, tracker, answer.answer.usage);
}

function listModels(engine: SimEngine): unknown {
  return {
    object: 'list',
    data: Object.keys(engine.models).map((id) => ({ id, object: 'model', created: 0, owned_by: 'tollgate-sim' })),
  };
}

async function route(engine: SimEngine, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const path = q === -1 ? url : url.slice(0, q);
  const requestId = req.headers['x-request-id'];
  if (typeof requestId === 'string') res.setHeader('x-request-id', requestId);
  if (path === '/v1/chat/completions' || path === '/v1/embeddings') {
    if (req.method !== 'POST') throw new SimError(405, `Method ${req.method} not allowed on ${path}.`, { code: 'method_not_allowed' });
    const body = await readJson(req);
    if (path === '/v1/chat/completions') return handleChat(engine, body, req, res);
    return handleEmbeddings(engine, body, req, res);
  }
  if (path === '/v1/models' && req.method === 'GET') return sendJson(res, 200, listModels(engine));
  if (path.startsWith('/_sim/')) return handleControl(engine, path, req, res);
  throw new SimError(404, `Unknown route ${req.method} ${path}.`, { code: 'not_found' });
}

/** Starts the simulator on a loopback port (by default); resolves once it listens. */
export async function startSimServer(opts: SimServerOptions = {}): Promise<SimServer> {
  const engine = new SimEngine({ models: opts.models ?? DEFAULT_SIM_MODELS, faults: opts.faults ?? {}, random: opts.random });
  const server = createServer({ keepAlive: true, noDelay: true }, (req, res) => {
    route(engine, req, res).catch((err: unknown) => {
      if (res.destroyed) return;
      if (res.headersSent) {
        res.destroy(); // a bug mid-answer: cut the response off rather than leave it hanging
        return;
      }
      if (err instanceof SimError) sendError(res, err);
      else sendError(res, new SimError(500, 'The simulator failed to handle the request.', { code: 'internal_error' }));
    });
  });
  // Longer than undici's and the openai SDK's idle pools, so the client closes idle sockets first.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  server.requestTimeout = 0;
  const host = opts.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const urlHost = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '[::1]' : host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${urlHost}:${port}/v1`,
    port,
    engine,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}
