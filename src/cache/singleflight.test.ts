import { describe, expect, it } from 'vitest';
// @ts-ignore TS6059: test helpers live outside tsconfig's rootDir (src); the import is type-checked all the same.
import { chatCompletion } from '../../test/helpers/completions.js';
import type { ChatCompletion, ChatCompletionChunk } from '../providers/types.js';
import { replayChunks } from './answer.js';
import { SingleFlight, type UpstreamStream } from './singleflight.js';

const completion = chatCompletion('Hello world, this is a shared answer.', { id: 'c1', created: 1, usage: { prompt_tokens: 3, completion_tokens: 8, total_tokens: 11 } });

/** An upstream stream whose chunks are released one by one by `release()`. */
function controlledStream(chunks: ChatCompletionChunk[]) {
  const pending: Array<() => void> = [];
  let i = 1;
  let aborted = false;
  const up: UpstreamStream = {
    first: chunks[0]!,
    rest: {
      async next() {
        if (i >= chunks.length) return { done: true, value: undefined };
        await new Promise<void>((r) => pending.push(r));
        if (aborted) throw new Error('aborted');
        return { done: false, value: chunks[i++]! };
      },
      async return() {
        aborted = true;
        return { done: true, value: undefined };
      },
    },
    idle: { rearm() {}, dispose() {} },
  };
  return { up, release: () => pending.shift()?.(), releaseAll: async () => { while (i < chunks.length) { pending.shift()?.(); await new Promise((r) => setImmediate(r)); } } };
}

async function drain(first: ChatCompletionChunk, rest: AsyncIterator<ChatCompletionChunk>): Promise<string> {
  let text = first.choices[0]?.delta.content ?? '';
  for (;;) {
    const n = await rest.next();
    if (n.done) return text;
    text += n.value.choices[0]?.delta.content ?? '';
  }
}

describe('single flight', () => {
  it('hands a JSON answer to every follower and forgets the flight', async () => {
    const sf = new SingleFlight();
    const flight = sf.lead('k');
    flight.attach(new AbortController().signal);
    const followers = Array.from({ length: 5 }, () => flight.share(false, new AbortController().signal));
    expect(sf.get('k')).toBe(flight);
    flight.resolve(completion);
    for (const f of await Promise.all(followers)) expect(f).toEqual({ kind: 'json', body: completion });
    expect(sf.get('k')).toBeUndefined();
    expect(flight.followers).toBe(5);
  });

  it('fans a stream out to late and early subscribers, and assembles it for JSON followers', async () => {
    const sf = new SingleFlight();
    const flight = sf.lead('k');
    flight.attach(new AbortController().signal);
    let completed: ChatCompletion | undefined;
    flight.onComplete = (b) => (completed = b);
    const early = flight.share(true, new AbortController().signal);
    const json = flight.share(false, new AbortController().signal);
    const chunks = replayChunks(completion, true);
    const { up, releaseAll } = controlledStream(chunks);
    const own = flight.stream(up);
    const earlyShare = await early;
    if (earlyShare.kind !== 'stream') throw new Error('expected a stream');
    const texts = Promise.all([drain(own.first, own.rest), drain(earlyShare.first, earlyShare.rest)]);
    await releaseAll();
    const late = await flight.share(true, new AbortController().signal); // after the end: the whole answer
    expect(await texts).toEqual([completion.choices[0]!.message.content, completion.choices[0]!.message.content]);
    const jsonShare = await json;
    expect(jsonShare.kind).toBe('json');
    if (jsonShare.kind === 'json') expect(jsonShare.body.choices[0]!.message.content).toBe(completion.choices[0]!.message.content);
    expect(jsonShare.kind === 'json' && jsonShare.body.usage).toEqual(completion.usage);
    expect(completed?.choices[0]!.message.content).toBe(completion.choices[0]!.message.content);
    expect(late.kind).toBe('json');
  });

  it('a failure reaches every waiter', async () => {
    const flight = new SingleFlight().lead('k');
    flight.attach(new AbortController().signal);
    const waiters = Array.from({ length: 3 }, () => flight.share(true, new AbortController().signal));
    const err = new Error('upstream down');
    flight.fail(err);
    for (const w of waiters) await expect(w).rejects.toBe(err);
  });

  it('aborts upstream only when every client has gone', async () => {
    const flight = new SingleFlight().lead('k');
    const leader = new AbortController();
    const follower = new AbortController();
    flight.attach(leader.signal);
    const waiting = flight.share(false, follower.signal).catch(() => 'left');
    leader.abort();
    await new Promise((r) => setImmediate(r));
    expect(flight.signal.aborted).toBe(false);
    follower.abort();
    expect(await waiting).toBe('left');
    expect(flight.signal.aborted).toBe(true);
  });

  it('a subscriber that leaves does not stop the others', async () => {
    const flight = new SingleFlight().lead('k');
    flight.attach(new AbortController().signal);
    const other = flight.share(true, new AbortController().signal);
    const { up, releaseAll } = controlledStream(replayChunks(completion, false));
    const own = flight.stream(up);
    await own.rest.return?.();
    const share = await other;
    if (share.kind !== 'stream') throw new Error('expected a stream');
    const text = drain(share.first, share.rest);
    await releaseAll();
    expect(await text).toBe(completion.choices[0]!.message.content);
    expect(flight.signal.aborted).toBe(false);
  });

  it('the last reader stopping (a client gone, a budget cut-off) aborts upstream', async () => {
    const flight = new SingleFlight().lead('k');
    const leave = flight.attach(new AbortController().signal); // the leader's client stays connected
    const { up } = controlledStream(replayChunks(completion, false));
    const own = flight.stream(up);
    leave(); // the leader now takes part through its subscription only
    expect(flight.signal.aborted).toBe(false);
    await own.rest.return?.();
    expect(flight.signal.aborted).toBe(true);
  });
});
