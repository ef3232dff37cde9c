/**
 * A batch's input file: its request lines (splitLines), each checked as OpenAI checks it
 * (validateLines: a JSON object within server.maxJsonDepth, a unique `custom_id`, `method` POST,
 * `url` the batch's endpoint, a `body` that JobService.prepare accepts). Every invalid line is
 * reported with its 1-based line number, its code and the field it names.
 */
import { isGatewayError } from '../errors.js';
import { findTooDeepInText, jsonTooDeepError } from '../wire/json-depth.js';
import type { BatchRecord, NewJob } from './types.js';
import type { BatchEndpoint } from './wire.js';

export type BatchLineError = BatchRecord['errors'][number];

/** Longest custom_id accepted. */
export const MAX_CUSTOM_ID = 512;

export interface InputLine {
  /** 1-based, counting every line of the file (blank ones too), as an editor shows it. */
  line: number;
  text: string;
}

/** The file's request lines: UTF-8, LF or CRLF, a leading BOM and blank lines skipped. */
export function splitLines(content: Buffer): InputLine[] {
  let text = content.toString('utf8');
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const out: InputLine[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    let t = lines[i]!;
    if (t.endsWith('\r')) t = t.slice(0, -1);
    if (t.trim() !== '') out.push({ line: i + 1, text: t });
  }
  return out;
}

const YIELD_EVERY = 500;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Checks every line as OpenAI does (a JSON object; `custom_id` a string unique in the file;
 * `method` POST; `url` the batch's endpoint; `body` an object), then the body itself through
 * `prepare` (JobService.prepare: schema, model, its type against the endpoint, the key's
 * allowed models), whose GatewayError becomes the line's error. Returns the jobs of the valid
 * lines and one error per invalid line, in line order.
 */
export async function validateLines(
  lines: readonly InputLine[],
  endpoint: BatchEndpoint,
  prepare: (body: Record<string, unknown>, customId: string) => NewJob,
  maxJsonDepth = 64,
): Promise<{ jobs: NewJob[]; errors: BatchLineError[] }> {
  const jobs: NewJob[] = [];
  const errors: BatchLineError[] = [];
  const seen = new Map<string, number>();
  let checked = 0;
  for (const { line, text } of lines) {
    // A large file is checked in slices, so online requests are not held up meanwhile.
    if (++checked % YIELD_EVERY === 0) await new Promise((resolve) => setImmediate(resolve));
    const fail = (code: string, message: string, param: string | null = null) => errors.push({ code, message, line, param });
    // Too deep (server.maxJsonDepth) is refused before parsing, like a request body (src/wire/json-depth.ts).
    const tooDeep = findTooDeepInText(text, maxJsonDepth);
    if (tooDeep !== undefined) {
      const err = jsonTooDeepError(tooDeep, maxJsonDepth);
      fail(err.code, err.message, err.param);
      continue;
    }
    let request: unknown;
    try {
      request = JSON.parse(text);
    } catch {
      fail('invalid_json_line', 'This line is not parseable as valid JSON.');
      continue;
    }
    if (!isObject(request)) {
      fail('invalid_json_line', 'This line is not a JSON object.');
      continue;
    }
    const customId = request['custom_id'];
    if (customId === undefined || customId === null) {
      fail('missing_field', "Missing required parameter: 'custom_id'.", 'custom_id');
      continue;
    }
    if (typeof customId !== 'string') {
      fail('invalid_type', "Invalid type for 'custom_id': expected string.", 'custom_id');
      continue;
    }
    if (customId === '' || customId.length > MAX_CUSTOM_ID) {
      fail('invalid_value', `Invalid value for 'custom_id': it must be 1 to ${MAX_CUSTOM_ID} characters long.`, 'custom_id');
      continue;
    }
    const first = seen.get(customId);
    if (first !== undefined) {
      fail(
        'duplicate_custom_id',
        `The custom_id '${customId}' is a duplicate of line ${first}; each request's custom_id must be unique in the batch.`,
        'custom_id',
      );
      continue;
    }
    seen.set(customId, line);
    const method = request['method'];
    if (method === undefined || method === null) {
      fail('missing_field', "Missing required parameter: 'method'.", 'method');
      continue;
    }
    if (method !== 'POST') {
      fail('invalid_value', "Invalid value for 'method': only 'POST' is supported.", 'method');
      continue;
    }
    const url = request['url'];
    if (url === undefined || url === null) {
      fail('missing_field', "Missing required parameter: 'url'.", 'url');
      continue;
    }
    if (url !== endpoint) {
      fail('url_mismatch', `The url '${String(url)}' does not match the batch's endpoint '${endpoint}'.`, 'url');
      continue;
    }
    const body = request['body'];
    if (body === undefined || body === null) {
      fail('missing_field', "Missing required parameter: 'body'.", 'body');
      continue;
    }
    if (!isObject(body)) {
      fail('invalid_type', "Invalid type for 'body': expected object.", 'body');
      continue;
    }
    try {
      jobs.push(prepare(body, customId));
    } catch (err) {
      if (!isGatewayError(err)) throw err;
      fail(err.code, err.message, err.param);
    }
  }
  return { jobs, errors };
}
