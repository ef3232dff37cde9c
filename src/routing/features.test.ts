import { describe, expect, it } from 'vitest';
import type { ChatCompletionRequest, ChatMessage } from '../providers/types.js';
import { HEAD_CHARS, TAIL_CHARS, extractFeatures } from './features.js';

const req = (messages: ChatMessage[], extra: Partial<ChatCompletionRequest> = {}): ChatCompletionRequest => ({ model: 'auto', messages, ...extra });
const ask = (text: string, extra: Partial<ChatCompletionRequest> = {}) => extractFeatures(req([{ role: 'user', content: text }], extra));

describe('extractFeatures: sizes and shape', () => {
  it('counts characters, estimated tokens, messages, user turns and the system prompt', () => {
    const f = extractFeatures(
      req([
        { role: 'system', content: 'Be brief.' }, // 9
        { role: 'user', content: 'Hello there' }, // 11
        { role: 'assistant', content: 'Hi!' }, // 3
        { role: 'user', content: 'What time is it?' }, // 16
      ]),
    );
    expect(f.promptChars).toBe(39);
    expect(f.promptTokens).toBe(10); // ceil(39 / 4)
    expect(f.lastUserChars).toBe(16);
    expect(f.messages).toBe(4);
    expect(f.userTurns).toBe(2);
    expect(f.hasSystem).toBe(true);
    expect(extractFeatures(req([{ role: 'developer', content: 'x' }, { role: 'user', content: 'y' }])).hasSystem).toBe(true);
    expect(ask('hi').hasSystem).toBe(false);
  });

  it('reads array contents: text parts count, image parts set hasImages', () => {
    const f = extractFeatures(
      req([
        {
          role: 'user',
          content: [
            { type: 'text', text: 'What is in' },
            { type: 'image_url', image_url: { url: 'https://example.com/a.png' } },
            { type: 'text', text: 'this picture?' },
          ],
        },
      ]),
    );
    expect(f.promptChars).toBe(23);
    expect(f.lastUserChars).toBe(24); // the parts joined by a newline
    expect(f.hasImages).toBe(true);
    expect(ask('no image').hasImages).toBe(false);
  });

  it('counts tool-call arguments and tool results as text', () => {
    const f = extractFeatures(
      req([
        { role: 'user', content: 'weather?' },
        { role: 'assistant', content: null, tool_calls: [{ id: '1', type: 'function', function: { name: 'get', arguments: '{"c":"Oslo"}' } }] },
        { role: 'tool', tool_call_id: '1', content: '12 C' },
      ]),
    );
    expect(f.promptChars).toBe(8 + 3 + 12 + 4);
    expect(f.lastUserChars).toBe(8);
  });

  it('survives empty and odd requests', () => {
    const f = extractFeatures(req([]));
    expect(f).toMatchObject({ promptChars: 0, promptTokens: 0, messages: 0, userTurns: 0, lastUserChars: 0, hasCode: false, maxTokens: null });
    expect(extractFeatures(req([{ role: 'user', content: null }])).promptChars).toBe(0);
    expect(extractFeatures({ model: 'x' } as unknown as ChatCompletionRequest).messages).toBe(0);
  });

  it('takes max_completion_tokens, then max_tokens; null when neither', () => {
    expect(ask('x', { max_tokens: 300 }).maxTokens).toBe(300);
    expect(ask('x', { max_tokens: 300, max_completion_tokens: 900 }).maxTokens).toBe(900);
    expect(ask('x', { max_tokens: null }).maxTokens).toBeNull();
    expect(ask('x').maxTokens).toBeNull();
  });

  it('sees tools (and legacy functions)', () => {
    expect(ask('x', { tools: [{ type: 'function', function: { name: 'f' } }] }).hasTools).toBe(true);
    expect(ask('x', { tools: [] }).hasTools).toBe(false);
    expect(ask('x', { functions: [{ name: 'f' }] }).hasTools).toBe(true);
  });
});

describe('extractFeatures: code', () => {
  it.each([
    ['a fence', 'Why does this fail?\n```\nfoo()\n```'],
    ['a JS function', 'function add(a, b) { return a + b }'],
    ['an arrow', 'items.map(x => x * 2)'],
    ['a Python def', 'def parse(line):\n    return line.split()'],
    ['a brace block with ;', 'if (x) { y = 1; }'],
    ['#include', '#include <stdio.h>\nint main() {}'],
    ['SQL', 'SELECT id, name FROM users WHERE age > 30'],
    ['SQL (star)', 'select * from orders'],
    ['a Python traceback', 'Traceback (most recent call last):\n  File "a.py", line 3, in <module>'],
    ['a JS stack frame', 'Error: boom\n    at main (/app/index.js:10:5)'],
    ['a typed error', 'I keep getting TypeError: x is not a function'],
    ['a shell command', '$ npm install\nthen it fails'],
    ['a git command', 'after git rebase my branch is gone'],
    ['HTML', 'my <div class="a"> will not center'],
    ['a request to write code', 'Write a Python function that reverses a string.'],
    ['a request to implement in a language', "Implement Dijkstra's algorithm in Go"],
    ['a regex request', 'Give me a regex for US zip codes'],
  ])('%s', (_name, text) => {
    expect(ask(text).hasCode).toBe(true);
  });

  it.each([
    ['plain prose', 'Please select the best option from the list below.'],
    ['an invitation', 'Would you like to join us on Friday?'],
    ['an integration question', 'Can you integrate this with my calendar?'],
    ['a support message', 'Error: I cannot log in to my account'],
    ['a letter', 'Write a cover letter. I know Excel and SQL.'],
    ['a prose update', 'Can you update my profile? Set it to private.'],
  ])('not for %s', (_name, text) => {
    expect(ask(text).hasCode).toBe(false);
  });

  it('a fence anywhere in the conversation counts; code-like syntax only in the last user message', () => {
    const fenced = extractFeatures(req([{ role: 'user', content: 'look:\n```js\nx()\n```' }, { role: 'assistant', content: 'ok' }, { role: 'user', content: 'and now?' }]));
    expect(fenced.hasCode).toBe(true);
    const earlier = extractFeatures(req([{ role: 'user', content: 'const x = 1;' }, { role: 'assistant', content: 'ok' }, { role: 'user', content: 'thanks' }]));
    expect(earlier.hasCode).toBe(false);
  });
});

describe('extractFeatures: math, reasoning, structure', () => {
  it.each([
    ['LaTeX', 'Simplify $$\\frac{a}{b} + \\frac{c}{d}$$'],
    ['an equation', 'Solve 3x + 7 = 22'],
    ['a power', 'Differentiate x^2 + 3x'],
    ['symbols', 'Show that ∑ 1/n² converges'],
    ['vocabulary', 'What is the expected value of a die roll?'],
    ['a proof', 'Prove that there are infinitely many primes'],
    ['probability notation', 'Compute P(X < Y) for these variables'],
    ['German', 'Berechne die Wahrscheinlichkeit, zwei Sechsen zu würfeln'],
  ])('math: %s', (_name, text) => {
    expect(ask(text).hasMath).toBe(true);
  });

  it.each([
    ['arithmetic', 'What is 15% of 80?'],
    ['an integral part', 'Trust is an integral part of teamwork'],
    ['a proof of concept', 'We built a proof of concept last week'],
    ['a Linux distribution', 'Which Linux distribution should I install?'],
  ])('not math: %s', (_name, text) => {
    expect(ask(text).hasMath).toBe(false);
  });

  it.each([
    'Explain step by step how TLS works',
    'Explain why the sky is blue',
    'Why does my bread not rise?',
    'Analyze this argument',
    'Compare Postgres and MySQL',
    'What are the trade-offs of microservices?',
    'Design a URL shortener',
    'Derive the formula for the area of a circle',
    'What is the root cause of this outage?',
    'Explica paso a paso cómo funciona un motor',
    'Analysez ce texte',
  ])('reasoning: %s', (text) => {
    expect(ask(text).asksReasoning).toBe(true);
  });

  it.each(['What is the capital of France?', 'Translate "good night" to Spanish', 'Is this review positive or negative?', 'hi'])('no reasoning: %s', (text) => {
    expect(ask(text).asksReasoning).toBe(false);
  });

  it.each(['Return the result as JSON', 'Make a table of the planets', 'Give me a list of 10 names', 'Export it as CSV', 'Top 5 books on Rome?', 'Design the database schema', 'in YAML please'])(
    'structure: %s',
    (text) => {
      expect(ask(text).asksStructure).toBe(true);
    },
  );

  it('structure from response_format json (jsonMode) or the system prompt', () => {
    const j = ask('Who won?', { response_format: { type: 'json_object' } });
    expect(j.jsonMode).toBe(true);
    expect(j.asksStructure).toBe(true);
    const s = ask('Who won?', { response_format: { type: 'json_schema', json_schema: { name: 'x', schema: {} } } });
    expect(s.jsonMode).toBe(true);
    const t = ask('Who won?', { response_format: { type: 'text' } });
    expect(t.jsonMode).toBe(false);
    expect(t.asksStructure).toBe(false);
    const sys = extractFeatures(req([{ role: 'system', content: 'Always answer in JSON with keys a and b.' }, { role: 'user', content: 'Who won?' }]));
    expect(sys.asksStructure).toBe(true);
    expect(sys.jsonMode).toBe(false);
  });

  it('scans a long message at its head and tail only', () => {
    const filler = 'lorem ipsum dolor sit amet '.repeat(Math.ceil((HEAD_CHARS + TAIL_CHARS) / 10));
    expect(ask(`${filler}\nNow explain why this happens.`).asksReasoning).toBe(true); // in the tail
    expect(ask(`Analyze this:\n${filler}`).asksReasoning).toBe(true); // in the head
    const middle = filler.slice(0, filler.length / 2) + ' prove it ' + filler.slice(filler.length / 2);
    expect(ask(middle).asksReasoning).toBe(false); // in the middle: not scanned
  });
});
