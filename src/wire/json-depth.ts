/**
 * One bound on how deeply JSON may nest (`server.maxJsonDepth`), checked on the text before it is
 * parsed: by the app's `application/json` parser for every JSON body (src/http/request-guards.ts)
 * and for each line of a batch input file (src/jobs/batch-input.ts).
 *
 * Why: much of what follows parsing recurses (JSON.stringify when a body is logged or forwarded
 * upstream, the cache key's canonical hashing, schema walks). A body nested 10,000 deep (60 KB)
 * made those throw RangeError deep inside a request: a 500, or, from invoke, an "upstream"
 * failure counted by a circuit breaker. And parsing itself gets slow with depth (V8 took 2.7 s
 * for 2 MB of `[`). So the text is scanned first, and refused past the bound with a 400 naming
 * where, without parsing it.
 *
 * The scan is one loop over the characters (no recursion, no allocation: per-level state lives in
 * typed arrays of maxDepth + 1 entries), so the check itself cannot overflow the stack; about
 * 2 ms per MB. It counts brackets outside strings and does not validate the JSON (the parser
 * does, afterwards).
 */
import { GatewayError } from '../errors.js';

/** Segments of the path shown in an error before it is cut with "...". */
const SHOWN_SEGMENTS = 8;
/** Longest key shown in a path. */
const SHOWN_KEY_CHARS = 40;

const QUOTE = 34;
const BACKSLASH = 92;
const OPEN_OBJECT = 123;
const CLOSE_OBJECT = 125;
const OPEN_ARRAY = 91;
const CLOSE_ARRAY = 93;
const COMMA = 44;

/**
 * The path (`tools[0].function.parameters...`) of the first object or array nested deeper than
 * `maxDepth` in the JSON text (the top-level value is depth 1), or undefined when none is.
 */
export function findTooDeepInText(text: string, maxDepth: number): string | undefined {
  const levels = maxDepth + 1;
  // Per open level: an array? its current index; an object: its current key's offsets, and
  // whether the next string is a key.
  const isArray = new Uint8Array(levels);
  const index = new Uint32Array(levels);
  const keyStart = new Int32Array(levels);
  const keyEnd = new Int32Array(levels);
  const expectKey = new Uint8Array(levels);
  let depth = 0;
  let inString = false;
  let stringIsKey = false;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) {
        inString = false;
        if (stringIsKey) keyEnd[depth] = i;
      }
      continue;
    }
    switch (c) {
      case QUOTE:
        inString = true;
        stringIsKey = depth > 0 && isArray[depth] === 0 && expectKey[depth] === 1;
        if (stringIsKey) {
          expectKey[depth] = 0;
          keyStart[depth] = i + 1;
          keyEnd[depth] = i + 1;
        }
        break;
      case OPEN_OBJECT:
      case OPEN_ARRAY:
        if (depth === maxDepth) return pathAt(text, depth, isArray, index, keyStart, keyEnd);
        depth++;
        isArray[depth] = c === OPEN_ARRAY ? 1 : 0;
        index[depth] = 0;
        expectKey[depth] = c === OPEN_OBJECT ? 1 : 0;
        keyStart[depth] = -1;
        keyEnd[depth] = -1;
        break;
      case CLOSE_OBJECT:
      case CLOSE_ARRAY:
        if (depth > 0) depth--;
        break;
      case COMMA:
        if (depth > 0) {
          if (isArray[depth] === 1) index[depth] = index[depth]! + 1;
          else expectKey[depth] = 1;
        }
        break;
    }
  }
  return undefined;
}

/** The path to the value being opened under level `depth` (levels 1..depth give one segment each). */
function pathAt(text: string, depth: number, isArray: Uint8Array, index: Uint32Array, keyStart: Int32Array, keyEnd: Int32Array): string {
  let path = '';
  const shown = Math.min(depth, SHOWN_SEGMENTS);
  for (let level = 1; level <= shown; level++) {
    if (isArray[level] === 1) {
      path += `[${index[level]!}]`;
    } else {
      const start = keyStart[level]!;
      const key = start < 0 ? '?' : text.slice(start, Math.min(keyEnd[level]!, start + SHOWN_KEY_CHARS)).replace(/[\u0000-\u001f\u007f"\\]/g, '?');
      path += path === '' ? key : `.${key}`;
    }
  }
  return depth > SHOWN_SEGMENTS ? `${path}...` : path;
}

/** The 400 for JSON nested deeper than `maxDepth` at `path` (`prefix` is put before it). */
export function jsonTooDeepError(path: string, maxDepth: number, prefix = ''): GatewayError {
  const param = `${prefix}${path}`;
  return new GatewayError(
    'invalid_request',
    `Invalid value for '${param}': the JSON nests deeper than ${maxDepth} levels, the most this gateway accepts (server.maxJsonDepth).`,
    { param },
  );
}

/** Throws a 400 `invalid_request` naming where the JSON text nests deeper than `maxDepth`. */
export function checkJsonTextDepth(text: string, maxDepth: number, prefix = ''): void {
  const path = findTooDeepInText(text, maxDepth);
  if (path !== undefined) throw jsonTooDeepError(path, maxDepth, prefix);
}
