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

type Signal = 'hasCode' | 'hasMath' | 'asksReasoning' | 'asksStructure';

/** [signal, whether the ask sets it, the last user message, the case's name (default: the message)]. */
const SIGNAL_CASES: Array<[Signal, boolean, string, string?]> = [
  ['hasCode', true, 'Why does this fail?\n```\nfoo()\n```', 'a fence'],
  ['hasCode', true, 'function add(a, b) { return a + b }', 'a JS function'],
  ['hasCode', true, 'items.map(x => x * 2)', 'an arrow'],
  ['hasCode', true, 'def parse(line):\n    return line.split()', 'a Python def'],
  ['hasCode', true, 'if (x) { y = 1; }', 'a brace block with ;'],
  ['hasCode', true, '#include <stdio.h>\nint main() {}', '#include'],
  ['hasCode', true, 'SELECT id, name FROM users WHERE age > 30', 'SQL'],
  ['hasCode', true, 'select * from orders', 'SQL (star)'],
  ['hasCode', true, 'Traceback (most recent call last):\n  File "a.py", line 3, in <module>', 'a Python traceback'],
  ['hasCode', true, 'Error: boom\n    at main (/app/index.js:10:5)', 'a JS stack frame'],
  ['hasCode', true, 'I keep getting TypeError: x is not a function', 'a typed error'],
  ['hasCode', true, '$ npm install\nthen it fails', 'a shell command'],
  ['hasCode', true, 'after git rebase my branch is gone', 'a git command'],
  ['hasCode', true, 'my <div class="a"> will not center', 'HTML'],
  ['hasCode', true, 'Write a Python function that reverses a string.', 'a request to write code'],
  ['hasCode', true, "Implement Dijkstra's algorithm in Go", 'a request to implement in a language'],
  ['hasCode', true, 'Give me a regex for US zip codes', 'a regex request'],
  ['hasCode', false, 'Please select the best option from the list below.', 'plain prose'],
  ['hasCode', false, 'Would you like to join us on Friday?', 'an invitation'],
  ['hasCode', false, 'Can you integrate this with my calendar?', 'an integration question'],
  ['hasCode', false, 'Error: I cannot log in to my account', 'a support message'],
  ['hasCode', false, 'Write a cover letter. I know Excel and SQL.', 'a letter'],
  ['hasCode', false, 'Can you update my profile? Set it to private.', 'a prose update'],
  ['hasMath', true, 'Simplify $$\\frac{a}{b} + \\frac{c}{d}$$', 'LaTeX'],
  ['hasMath', true, 'Solve 3x + 7 = 22', 'an equation'],
  ['hasMath', true, 'Differentiate x^2 + 3x', 'a power'],
  ['hasMath', true, 'Show that ∑ 1/n² converges', 'symbols'],
  ['hasMath', true, 'What is the expected value of a die roll?', 'vocabulary'],
  ['hasMath', true, 'Prove that there are infinitely many primes', 'a proof'],
  ['hasMath', true, 'Compute P(X < Y) for these variables', 'probability notation'],
  ['hasMath', true, 'Berechne die Wahrscheinlichkeit, zwei Sechsen zu würfeln', 'German'],
  ['hasMath', false, 'What is 15% of 80?', 'arithmetic'],
  ['hasMath', false, 'Trust is an integral part of teamwork', 'an integral part'],
  ['hasMath', false, 'We built a proof of concept last week', 'a proof of concept'],
  ['hasMath', false, 'Which Linux distribution should I install?', 'a Linux distribution'],
  ['asksReasoning', true, 'Explain step by step how TLS works'],
  ['asksReasoning', true, 'Explain why the sky is blue'],
  ['asksReasoning', true, 'Why does my bread not rise?'],
  ['asksReasoning', true, 'Analyze this argument'],
  ['asksReasoning', true, 'Compare Postgres and MySQL'],
  ['asksReasoning', true, 'What are the trade-offs of microservices?'],
  ['asksReasoning', true, 'Design a URL shortener'],
  ['asksReasoning', true, 'Derive the formula for the area of a circle'],
  ['asksReasoning', true, 'What is the root cause of this outage?'],
  ['asksReasoning', true, 'Explica paso a paso cómo funciona un motor'],
  ['asksReasoning', true, 'Analysez ce texte'],
  ['asksReasoning', false, 'What is the capital of France?'],
  ['asksReasoning', false, 'Translate "good night" to Spanish'],
  ['asksReasoning', false, 'Is this review positive or negative?'],
  ['asksReasoning', false, 'hi'],
  ['asksStructure', true, 'Return the result as JSON'],
  ['asksStructure', true, 'Make a table of the planets'],
  ['asksStructure', true, 'Give me a list of 10 names'],
  ['asksStructure', true, 'Export it as CSV'],
  ['asksStructure', true, 'Top 5 books on Rome?'],
  ['asksStructure', true, 'Design the database schema'],
  ['asksStructure', true, 'in YAML please'],
];

/** Test titles: `math: LaTeX`, `not math: arithmetic`... */
const TITLES: Record<Signal, [yes: string, no: string]> = {
  hasCode: ['', 'not for '],
  hasMath: ['math: ', 'not math: '],
  asksReasoning: ['reasoning: ', 'no reasoning: '],
  asksStructure: ['structure: ', 'no structure: '],
};

/** The cases of `signals` as [title, signal, expected, text]. */
function signalCases(...signals: Signal[]): Array<[string, Signal, boolean, string]> {
  return SIGNAL_CASES.filter(([signal]) => signals.includes(signal)).map(([signal, is, text, name]) => [`${TITLES[signal][is ? 0 : 1]}${name ?? text}`, signal, is, text]);
}

describe('extractFeatures: code', () => {
  it.each(signalCases('hasCode'))('%s', (_title, signal, is, text) => {
    expect(ask(text)[signal]).toBe(is);
  });

  it('a fence anywhere in the conversation counts; code-like syntax only in the last user message', () => {
    const fenced = extractFeatures(req([{ role: 'user', content: 'look:\n```js\nx()\n```' }, { role: 'assistant', content: 'ok' }, { role: 'user', content: 'and now?' }]));
    expect(fenced.hasCode).toBe(true);
    const earlier = extractFeatures(req([{ role: 'user', content: 'const x = 1;' }, { role: 'assistant', content: 'ok' }, { role: 'user', content: 'thanks' }]));
    expect(earlier.hasCode).toBe(false);
  });
});

describe('extractFeatures: math, reasoning, structure', () => {
  it.each(signalCases('hasMath', 'asksReasoning', 'asksStructure'))('%s', (_title, signal, is, text) => {
    expect(ask(text)[signal]).toBe(is);
  });

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
