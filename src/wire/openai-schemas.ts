/**
 * The OpenAI wire format of requests: the JSON schemas of chat completion and embeddings bodies,
 * compiled once by Fastify's validator for the synchronous routes (src/http/routes/openai.ts)
 * and by JobService for jobs and batch lines (src/jobs/service.ts). Plain JSON schema
 * with `type: [x, 'null']` (rather than anyOf unions) keeps validation fast and its messages
 * short enough to name the field: "Invalid type for 'max_tokens': expected integer".
 * Unknown fields pass through to the provider, as OpenAI adds parameters often.
 */

const nullable = (type: string | string[], extra: Record<string, unknown> = {}) => ({
  type: [...(Array.isArray(type) ? type : [type]), 'null'],
  ...extra,
});

const contentRequired = ['system', 'developer', 'user', 'tool'];

export const chatMessageSchema = {
  type: 'object',
  required: ['role'],
  properties: {
    role: { type: 'string', enum: ['system', 'developer', 'user', 'assistant', 'tool', 'function'] },
    content: { type: ['string', 'array', 'null'], items: { type: 'object', required: ['type'], properties: { type: { type: 'string' } } } },
    name: { type: 'string' },
    tool_call_id: { type: 'string' },
    tool_calls: {
      type: 'array',
      items: {
        type: 'object',
        required: ['id', 'function'],
        properties: {
          id: { type: 'string' },
          type: { type: 'string' },
          function: {
            type: 'object',
            required: ['name', 'arguments'],
            properties: { name: { type: 'string' }, arguments: { type: 'string' } },
          },
        },
      },
    },
  },
  if: { properties: { role: { enum: contentRequired } } },
  then: { required: ['role', 'content'] },
} as const;

/** Names that end up in the ledger, logs and labels: no control characters (PostgreSQL text refuses NUL). */
const modelNameSchema = { type: 'string', minLength: 1, maxLength: 256, pattern: '^[^\\u0000-\\u001f]+$' } as const;
const userSchema = { type: 'string', maxLength: 256, pattern: '^[^\\u0000-\\u001f]*$' } as const;

export const chatCompletionBodySchema = {
  type: 'object',
  required: ['model', 'messages'],
  properties: {
    model: modelNameSchema,
    messages: { type: 'array', minItems: 1, items: chatMessageSchema },
    stream: nullable('boolean'),
    stream_options: nullable('object', { properties: { include_usage: { type: 'boolean' } } }),
    max_tokens: nullable('integer', { minimum: 1 }),
    max_completion_tokens: nullable('integer', { minimum: 1 }),
    temperature: nullable('number', { minimum: 0, maximum: 2 }),
    top_p: nullable('number', { minimum: 0, maximum: 1 }),
    n: nullable('integer', { minimum: 1, maximum: 128 }),
    presence_penalty: nullable('number', { minimum: -2, maximum: 2 }),
    frequency_penalty: nullable('number', { minimum: -2, maximum: 2 }),
    seed: nullable('integer'),
    stop: { type: ['string', 'array', 'null'], maxItems: 4, items: { type: 'string' } },
    user: userSchema,
    tools: {
      type: 'array',
      items: {
        type: 'object',
        required: ['type', 'function'],
        properties: {
          type: { type: 'string', enum: ['function'] },
          function: {
            type: 'object',
            required: ['name'],
            properties: { name: { type: 'string', pattern: '^[a-zA-Z0-9_-]{1,64}$' }, description: { type: 'string' }, parameters: { type: 'object' } },
          },
        },
      },
    },
    tool_choice: { type: ['string', 'object'] },
    response_format: {
      type: 'object',
      required: ['type'],
      properties: { type: { type: 'string', enum: ['text', 'json_object', 'json_schema'] } },
    },
  },
} as const;

export const embeddingsBodySchema = {
  type: 'object',
  required: ['model', 'input'],
  properties: {
    model: modelNameSchema,
    input: {
      type: ['string', 'array'],
      minLength: 1,
      minItems: 1,
      maxItems: 2048,
      items: { type: ['string', 'integer', 'array'], minLength: 1, items: { type: 'integer' } },
    },
    encoding_format: { type: 'string', enum: ['float', 'base64'] },
    dimensions: { type: 'integer', minimum: 1 },
    user: userSchema,
  },
} as const;
