/**
 * English words for the cache's lexical checks, shared by the built-in embedder
 * (embedders/builtin.ts), the false-hit guard (guard.ts) and the cache decision (decision.ts): the
 * tokenizer, the stop words, a tiny suffix stemmer and the prefix match of two stems.
 */

/**
 * Very common English words (function words, auxiliaries, pronouns, question words and the
 * fillers of requests): they say little about what is asked.
 */
const STOP_WORDS = new Set(
  (
    'a an the this that these those there here of in on at to for from by with about as into onto ' +
    'over under between through during before after above below up down out off per via ' +
    'and or but if then else so than too also just only very really quite rather ' +
    'is are was were be been being am do does did doing done have has had having ' +
    'can could will would shall should may might must need ' +
    'i me my mine myself you your yours yourself we us our ours they them their theirs ' +
    'he him his she her hers it its itself one ones someone something anything ' +
    'what which who whom whose how why when where whether ' +
    'any some all each every both either such own same other another more most much many ' +
    'not no nor ' +
    'please tell let know explain give show get got thing things way ways ' +
    'like well even still yet again ever ok okay yes'
  ).split(' '),
);

/** Whether a lower-case word is one of the built-in very common English words. */
export function isStopWord(w: string): boolean {
  return STOP_WORDS.has(w);
}

/** A letter, digit or combining mark: part of a word. */
const WORD_CHAR = /[\p{L}\p{N}\p{M}]/u;
/** Scripts written without spaces between words: one character, one word. */
const IDEOGRAPH = /[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}]/u;
const APOSTROPHES = new Set(["'", '\u2019', '\u02bc']);

/** Contractions' first halves before n't whose stem is not just "minus the n". */
const NT_STEMS: Record<string, string> = { ca: 'can', wo: 'will', sha: 'shall', ai: 'be' };

/**
 * Splits a normalized (NFKC, lower-case) text into words. `n't` becomes a word "not"; other
 * clitics ('s, 're, 've, 'll, 'd, 'm) are dropped.
 */
export function tokenize(text: string): string[] {
  const words: string[] = [];
  const n = text.length;
  let start = -1; // start of the current word, -1 when between words
  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    let size = 1;
    let apostrophe: boolean;
    if (c < 0x80) {
      if (isAsciiWordChar(c)) {
        if (start < 0) start = i;
        i++;
        continue;
      }
      apostrophe = c === 0x27;
    } else {
      const cp = text.codePointAt(i)!;
      size = cp > 0xffff ? 2 : 1;
      const ch = text.slice(i, i + size);
      if (WORD_CHAR.test(ch)) {
        if (cp >= 0x2e80 && IDEOGRAPH.test(ch)) {
          if (start >= 0) words.push(text.slice(start, i));
          words.push(ch);
          start = -1;
        } else if (start < 0) {
          start = i;
        }
        i += size;
        continue;
      }
      apostrophe = APOSTROPHES.has(ch);
    }
    // Not part of a word: an apostrophe may end the word with a clitic, anything else ends it.
    if (apostrophe && start >= 0) {
      const skip = clitic(text, start, i, words);
      if (skip > 0) {
        start = -1;
        i = skip;
        continue;
      }
    }
    if (start >= 0) words.push(text.slice(start, i));
    start = -1;
    i += size;
  }
  if (start >= 0) words.push(text.slice(start));
  return words;
}

/**
 * At an apostrophe (index `at`) ending the word that began at `start`: a clitic (n't, 's, 're,
 * 've, 'll, 'd, 'm) is consumed (n't pushes the word's stem and "not"; the others push the word)
 * and the index after it returned; 0 when it is not a clitic.
 */
function clitic(text: string, start: number, at: number, words: string[]): number {
  const n = text.length;
  let j = at + 1;
  while (j < n && j - at <= 3 && isAsciiLetter(text.charCodeAt(j))) j++;
  if (j === at + 1 || j - at > 3) return 0;
  if (j < n && WORD_CHAR.test(text[j]!)) return 0;
  const tail = text.slice(at + 1, j);
  const word = text.slice(start, at);
  if (tail === 't' && word.length > 1 && word.endsWith('n')) {
    const head = word.slice(0, -1);
    words.push(NT_STEMS[head] ?? head, 'not');
    return j;
  }
  if (tail === 's' || tail === 're' || tail === 've' || tail === 'll' || tail === 'd' || tail === 'm') {
    words.push(word);
    return j;
  }
  return 0;
}

function isAsciiWordChar(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a);
}

function isAsciiLetter(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a);
}

function isVowel(c: string): boolean {
  return c === 'a' || c === 'e' || c === 'i' || c === 'o' || c === 'u' || c === 'y';
}

/**
 * A tiny English suffix stemmer (Latin-script words only; anything else is returned as is):
 * plurals (-ies, -es, -s), -ing, -ed, then a final e, so that create / creates / created /
 * creating all become "creat" (and use / used / using "us").
 */
export function stem(w: string): string {
  const n = w.length;
  if (n <= 2 || !isAsciiLetter(w.charCodeAt(n - 1))) return w;
  let s = w;
  if (n > 3) {
    if (s.endsWith('ies') && n > 4) s = `${s.slice(0, -3)}y`;
    else if (s.endsWith('sses')) s = s.slice(0, -2);
    else if (s.endsWith('es') && n > 4 && /(?:ch|sh|x|z|ss)es$/.test(s)) s = s.slice(0, -2);
    else if (s.endsWith('s') && !s.endsWith('ss') && !s.endsWith('us') && !s.endsWith('is')) s = s.slice(0, -1);
    else if (s.endsWith('ing') && n >= 5 && hasVowel(s, n - 3)) s = undouble(s.slice(0, -3));
    else if (s.endsWith('ed') && !s.endsWith('eed') && hasVowel(s, n - 2)) s = undouble(s.slice(0, -2));
  }
  if (s.length >= 3 && s.endsWith('e')) s = s.slice(0, -1);
  return s;
}

function hasVowel(s: string, end: number): boolean {
  for (let i = 0; i < end; i++) if (isVowel(s[i]!)) return true;
  return false;
}

/** running -> runn -> run (but not: fall, miss, buzz). */
function undouble(s: string): string {
  const n = s.length;
  if (n >= 3 && s[n - 1] === s[n - 2] && !'lsz'.includes(s[n - 1]!) && !isVowel(s[n - 1]!)) return s.slice(0, -1);
  return s;
}

/** Two stems match when equal or when they share a long prefix (utilize, utilization). */
export function sameStem(a: string, b: string): boolean {
  if (a === b) return true;
  const n = Math.min(a.length, b.length);
  let k = 0;
  while (k < n && a.charCodeAt(k) === b.charCodeAt(k)) k++;
  return k >= 4 && k >= 0.6 * n;
}
