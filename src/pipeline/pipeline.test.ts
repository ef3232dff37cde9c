import { describe, expect, it } from 'vitest';
import { GatewayError } from '../errors.js';
import { createLogger } from '../observability/logger.js';
// @ts-ignore TS6059: test helpers live outside tsconfig's rootDir (src); the import is type-checked all the same.
import { chatContext } from '../../test/helpers/context.js';
import type { ChatResult, RequestContext } from './context.js';
import { before, createPipeline, mergeParts } from './pipeline.js';

const log = createLogger('silent');
const answer: ChatResult = { kind: 'chat', body: { id: 'x', object: 'chat.completion', created: 0, model: 'm', choices: [] } };

describe('the pipeline', () => {
  it('runs the stages in the order of STAGES, whatever order they are given in; a result ends the way in', async () => {
    const seen: string[] = [];
    const p = createPipeline({
      stages: {
        invoke: () => void seen.push('invoke'),
        admit: before(() => void seen.push('admit')),
        cache: async (ctx, next) => {
          seen.push('cache in');
          if (ctx.headers['x-hit']) ctx.result = answer;
          else await next();
          seen.push('cache out');
        },
        authenticate: before(() => void seen.push('authenticate')),
      },
      settle: {},
      log,
      respond: { streamOverBudget: 'finish' },
    });
    await p.run(chatContext());
    expect(seen).toEqual(['authenticate', 'admit', 'cache in', 'invoke', 'cache out']);
    seen.length = 0;
    await p.run(chatContext({ headers: { 'x-hit': '1' } }));
    expect(seen).toEqual(['authenticate', 'admit', 'cache in', 'cache out']);
    await p.idle();
  });

  it('a before stage that sets a result or throws stops the stages after it', async () => {
    const seen: string[] = [];
    const p = createPipeline({
      stages: {
        authenticate: before((ctx) => {
          if (ctx.headers['x-fail']) throw new GatewayError('invalid_api_key', 'no');
          if (ctx.headers['x-hit']) ctx.result = answer;
        }),
        invoke: () => void seen.push('invoke'),
      },
      settle: {},
      log,
      respond: { streamOverBudget: 'finish' },
    });
    const failed = chatContext({ headers: { 'x-fail': '1' } });
    await p.run(failed);
    await p.run(chatContext({ headers: { 'x-hit': '1' } }));
    expect(seen).toEqual([]);
    expect(failed.status).toBe(401);
  });

  it('runs every settle step in order, each isolated: a throw is logged and the next step runs; idle waits for the async ones', async () => {
    const seen: string[] = [];
    let release = () => {};
    const p = createPipeline({
      stages: { invoke: (ctx) => void (ctx.result = answer) },
      settle: {
        'access log': () => void seen.push('access log'),
        metrics: () => {
          throw new Error('boom');
        },
        reconcile: () => new Promise<void>((resolve) => (release = () => (seen.push('reconciled'), resolve()))),
        'live stats': (_ctx: RequestContext, settled) => void seen.push(`live stats ${settled.status}`),
      },
      log,
      respond: { streamOverBudget: 'finish' },
    });
    await p.run(chatContext());
    let idle = false;
    const waiting = p.idle().then(() => (idle = true));
    await new Promise((resolve) => setImmediate(resolve)); // settle runs on the next turn
    await new Promise((resolve) => setImmediate(resolve));
    expect(seen).toEqual(['live stats 200', 'access log']);
    expect(idle).toBe(false);
    release();
    await waiting;
    expect(seen).toEqual(['live stats 200', 'access log', 'reconciled']);
  });

  it('refuses an unknown stage or settle step, and a slot two capabilities both fill', () => {
    expect(() => createPipeline({ stages: { nope: before(() => {}) } as never, settle: {}, log, respond: { streamOverBudget: 'finish' } })).toThrow(/unknown stage 'nope'/);
    expect(() => mergeParts([{ route: 1 }, { admit: 2 }, { route: 3 }], 'stage')).toThrow(/stage 'route' is contributed twice/);
    expect(mergeParts([{ route: 1 }, undefined, { admit: 2 }], 'stage')).toEqual({ route: 1, admit: 2 });
  });
});
