/** Request and response plumbing of the simulator's HTTP server: JSON bodies and OpenAI error envelopes. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { SimError } from './outcomes.js';

const MAX_BODY_BYTES = 32 * 1024 * 1024;
export const JSON_TYPE = 'application/json';

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      // Past the limit, keep draining (without keeping) so that the 413 can still be answered.
      if (size <= MAX_BODY_BYTES) chunks.push(chunk);
    });
    req.on('end', () => {
      if (size > MAX_BODY_BYTES) reject(new SimError(413, 'Request body too large.', { code: 'body_too_large' }));
      else resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks));
    });
    req.on('error', reject);
  });
}

/** The request body parsed as JSON; a 400 SimError when it is not JSON, 413 when too large. */
export async function readJson(req: IncomingMessage): Promise<unknown> {
  const raw = await readBody(req);
  try {
    return JSON.parse(raw.length === 0 ? 'null' : raw.toString('utf8'));
  } catch {
    throw new SimError(400, 'We could not parse the JSON body of your request.', { code: 'invalid_json' });
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': JSON_TYPE, 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** OpenAI's error envelope, with Retry-After and retry-after-ms when the error names a wait. */
export function sendError(res: ServerResponse, err: SimError): void {
  const headers: Record<string, string> = {};
  if (err.retryAfterSeconds !== undefined) {
    headers['retry-after'] = String(Math.ceil(err.retryAfterSeconds));
    headers['retry-after-ms'] = String(Math.round(err.retryAfterSeconds * 1000));
  }
  sendJson(res, err.status, err.toJSON(), headers);
}
