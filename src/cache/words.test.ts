import { describe, expect, it } from 'vitest';
import { stem, tokenize } from './words.js';

describe('tokenize and stem', () => {
  it("splits words, turns n't into not and drops other clitics", () => {
    expect(tokenize("don't it's we're can't won't")).toEqual(['do', 'not', 'it', 'we', 'can', 'not', 'will', 'not']);
    expect(tokenize('hello, world! snake_case v2.1')).toEqual(['hello', 'world', 'snake', 'case', 'v2', '1']);
    expect(tokenize('東京abc')).toEqual(['東', '京', 'abc']);
    expect(tokenize('')).toEqual([]);
  });

  it('stems plurals, -ing, -ed and a final e', () => {
    expect(stem('creates')).toBe(stem('creating'));
    expect(stem('created')).toBe(stem('create'));
    expect(stem('running')).toBe('run');
    expect(stem('policies')).toBe('policy');
    expect(stem('class')).toBe('class');
    expect(stem('東京')).toBe('東京');
  });
});
