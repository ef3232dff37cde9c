/**
 * A JSON schema validation failure (Ajv's errors, from Fastify's validator or JobService's) as
 * the one GatewayError that names the field: "Missing required parameter: 'messages'.",
 * "Invalid type for 'max_tokens': expected integer.". Used by the HTTP error handler
 * (src/http/error-handler.ts) and by job submissions (src/jobs/service.ts).
 */
import { GatewayError } from '../errors.js';

export interface AjvError {
  instancePath: string;
  keyword: string;
  message?: string;
  params: Record<string, unknown>;
}

/** `/messages/0/role` -> `messages[0].role` */
export function jsonPointerToParam(pointer: string): string {
  return pointer
    .split('/')
    .slice(1)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce((acc, part) => (/^\d+$/.test(part) ? `${acc}[${part}]` : acc ? `${acc}.${part}` : part), '');
}

export function validationError(errors: AjvError[], bodyLimitBytes: number): GatewayError {
  // Prefer the most specific error: a missing field or a type error over if/then wrappers.
  const e = errors.find((x) => x.keyword !== 'if') ?? errors[0];
  if (!e) return new GatewayError('invalid_request', 'Invalid request body.');
  let param = jsonPointerToParam(e.instancePath);
  if (e.keyword === 'required') {
    const missing = String(e.params['missingProperty']);
    param = param ? `${param}.${missing}` : missing;
    return new GatewayError('missing_field', `Missing required parameter: '${param}'.`, { param });
  }
  if (param === '' && e.keyword === 'type') {
    return new GatewayError('invalid_request', 'The request body must be a JSON object.');
  }
  if (e.keyword === 'type') {
    const expected = String(e.params['type']).split(',').filter((t) => t !== 'null').join(' or ');
    return new GatewayError('invalid_type', `Invalid type for '${param}': expected ${expected}.`, { param });
  }
  if (e.keyword === 'enum') {
    const allowed = (e.params['allowedValues'] as unknown[]).map((v) => `'${String(v)}'`).join(', ');
    return new GatewayError('invalid_value', `Invalid value for '${param}': must be one of ${allowed}.`, { param });
  }
  void bodyLimitBytes;
  return new GatewayError('invalid_value', `Invalid value for '${param}': ${e.message ?? 'invalid'}.`, { param });
}
