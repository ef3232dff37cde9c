/**
 * Talking to the gateway with the admin key: JSON requests and the snapshot stream. The key is
 * kept in sessionStorage (gone when the tab closes) and sent as a Bearer token; EventSource
 * cannot send headers, so the stream is read with fetch and a ReadableStream.
 */

const KEY_NAME = 'tollgate.adminKey';

export const storedKey = (): string | null => sessionStorage.getItem(KEY_NAME);
export const storeKey = (key: string): void => sessionStorage.setItem(KEY_NAME, key);
export const forgetKey = (): void => sessionStorage.removeItem(KEY_NAME);

/** A refused or failed call, with the gateway's explanation (problem+json `detail`). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }

  /** The key itself was refused (wrong, revoked, or not an admin key). */
  get unauthorized(): boolean {
    return this.status === 401 || this.status === 403;
  }
}

async function errorOf(res: Response): Promise<ApiError> {
  let detail = `${res.status} ${res.statusText}`;
  try {
    const body = (await res.json()) as { detail?: string; title?: string; error?: { message?: string } };
    detail = body.detail ?? body.error?.message ?? body.title ?? detail;
  } catch {
    /* not JSON: keep the status line */
  }
  return new ApiError(res.status, detail);
}

export async function getJson<T>(key: string, path: string, signal?: AbortSignal): Promise<T> {
  const res = await fetch(path, { headers: { authorization: `Bearer ${key}`, accept: 'application/json' }, signal: signal ?? null });
  if (!res.ok) throw await errorOf(res);
  return (await res.json()) as T;
}

/**
 * Reads a server-sent event stream until it ends or `signal` aborts, calling `onEvent` with each
 * event's name and parsed data. Throws ApiError when the stream is refused.
 */
export async function readEventStream(key: string, path: string, signal: AbortSignal, onEvent: (event: string, data: unknown) => void): Promise<void> {
  const res = await fetch(path, { headers: { authorization: `Bearer ${key}`, accept: 'text/event-stream' }, signal });
  if (!res.ok || !res.body) throw await errorOf(res);
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end: number;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = 'message';
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) event = line.slice(6).trim();
        else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
      }
      if (data.length === 0) continue;
      try {
        onEvent(event, JSON.parse(data.join('\n')));
      } catch {
        /* a malformed event is skipped; the next one replaces it */
      }
    }
  }
}
