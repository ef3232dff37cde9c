import { describe, expect, it } from 'vitest';
import { checkJsonTextDepth, findTooDeepInText } from './json-depth.js';

const objects = (depth: number, leaf = '1') => `${'{"a":'.repeat(depth)}${leaf}${'}'.repeat(depth)}`;
const arrays = (depth: number) => `${'['.repeat(depth)}1${']'.repeat(depth)}`;

describe('findTooDeepInText', () => {
  it('accepts nesting up to the limit, refuses one level more', () => {
    expect(findTooDeepInText(objects(64), 64)).toBeUndefined();
    expect(findTooDeepInText(arrays(64), 64)).toBeUndefined();
    expect(findTooDeepInText(objects(65), 64)).toBe('a.a.a.a.a.a.a.a...');
    expect(findTooDeepInText(arrays(65), 64)).toBe('[0][0][0][0][0][0][0][0]...');
  });

  it('names the path: keys and array indexes, short paths whole', () => {
    expect(findTooDeepInText('{"tools":[{"x":1},{"function":{"parameters":{"p":{}}}}]}', 5)).toBe('tools[1].function.parameters.p');
    expect(findTooDeepInText('[1,[2],[3,[4,5,{"k":[[]]}]]]', 4)).toBe('[2][1][2].k');
    expect(findTooDeepInText('{"a":1,"b":{"c":[1,2]},"d":{"e":{"f":{}}}}', 3)).toBe('d.e.f');
  });

  it('does not count brackets, quotes or commas inside strings', () => {
    const tricky = JSON.stringify({ s: '{[{[{[{[ "\\" ]]]]', t: ['\\', '"', ',', '[[['], u: { v: '}}}}' } });
    expect(findTooDeepInText(tricky, 3)).toBeUndefined();
    expect(findTooDeepInText(JSON.stringify({ 'a"b': { 'c,d': { '[e]': {} } } }), 3)).toBe('a??b.c,d.[e]');
  });

  it('handles a 1,000,000-deep text without recursion (and without parsing it)', () => {
    expect(findTooDeepInText(arrays(1_000_000), 64)).toMatch(/^\[0\].*\.\.\.$/);
    expect(findTooDeepInText(objects(600_000), 1000)).toMatch(/^a\.a.*\.\.\.$/);
  });

  it('leaves scalars and broken JSON to the parser', () => {
    expect(findTooDeepInText('"x"', 4)).toBeUndefined();
    expect(findTooDeepInText('{"a": [1, 2', 4)).toBeUndefined();
    expect(findTooDeepInText(']]]]}}}', 4)).toBeUndefined();
  });
});

describe('checkJsonTextDepth', () => {
  it('throws a 400 invalid_request naming the field and the setting', () => {
    try {
      checkJsonTextDepth(objects(10), 4, 'body.');
      expect.unreachable();
    } catch (err) {
      const e = err as { status: number; code: string; param: string; message: string };
      expect(e.status).toBe(400);
      expect(e.code).toBe('invalid_request');
      expect(e.param).toBe('body.a.a.a.a');
      expect(e.message).toContain('server.maxJsonDepth');
      expect(e.message).toContain('4 levels');
    }
  });
});
