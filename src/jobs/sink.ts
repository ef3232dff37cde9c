/**
 * The ResponseSink of a job run: the pipeline answers into it as it would into an HTTP reply.
 * JSON answers are kept whole; streams (chat jobs run as streams, so their tokens can be
 * followed live) are assembled into the chat.completion a client would have got, each content
 * delta handed to `onDelta` as it arrives.
 */
import { StreamAssembler } from '../cache/answer.js';
import type { ResponseSink, SseWriter } from '../pipeline/context.js';
import { type ChatCompletionChunk, toJsonText } from '../providers/types.js';

export class JobSink implements ResponseSink {
  private sent = false;
  /** The answer's HTTP status (200, or the error's), once answered. */
  status: number | undefined;
  /** The JSON answer, or the assembled stream once it ended with [DONE]. */
  body: Record<string, unknown> | undefined;
  /** The error event a stream ended with after it started. */
  streamError: Record<string, unknown> | undefined;
  headers: Record<string, string> = {};

  constructor(
    readonly signal: AbortSignal,
    private readonly onDelta?: (index: number, content: string) => void,
  ) {}

  get committed(): boolean {
    return this.sent;
  }

  sendJson(status: number, headers: Record<string, string>, body: object): void {
    this.sent = true;
    this.status = status;
    this.headers = headers;
    // An upstream answer forwarded unchanged carries its text (RAW_JSON): store plain data.
    this.body = JSON.parse(toJsonText(body)) as Record<string, unknown>;
  }

  openStream(headers: Record<string, string>): SseWriter {
    this.sent = true;
    this.status = 200;
    this.headers = headers;
    const assembler = new StreamAssembler();
    let done = false;
    return {
      send: async (data: string): Promise<void> => {
        if (data === '[DONE]') {
          done = true;
          return;
        }
        const parsed = JSON.parse(data) as Record<string, unknown>;
        if (parsed['error'] !== undefined && parsed['choices'] === undefined) {
          this.streamError = parsed;
          return;
        }
        const chunk = parsed as unknown as ChatCompletionChunk;
        assembler.add(chunk);
        if (this.onDelta) for (const c of chunk.choices) if (c.delta.content) this.onDelta(c.index, c.delta.content);
      },
      end: (): void => {
        if (done && !this.streamError) this.body = assembler.result() as unknown as Record<string, unknown>;
      },
    };
  }
}
