/**
 * The false-hit guard's analysis of one text (guard.ts compares two of them): in one scan, its
 * numbers (digits and number words, amounts, percentages, versions, dates), its first negation,
 * its names (proper nouns, acronyms, code identifiers), its quoted strings, its words, the opposite
 * words it uses and the tokens of its content words. Pure; the last analyses are memoized.
 */
import { boundedMemo } from '../util/memo.js';
import {
  ABBREVIATION, CURRENCY_CODES, CURRENCY_SYMBOLS, CURRENCY_WORDS, DATE_TOKEN, isClosing,
  isLetterAt, isLowerAt, isSpaceCode, isWordCode, LIST_MARKER, MAGNITUDES, NEGATED_FORM, NEGATIONS,
  NON_ASCII_UPPER, NON_ASCII_WORD_CHAR, normalizeNumber, NOT_NAMES, NUMBER_TOKEN, OPPOSITE_FORMS,
  PERCENT_WORDS, QUOTE_CHARS, QUOTED, startsUpper, TITLES, UNITS,
} from './guard-lexicon.js';
import { isStopWord, stem } from './words.js';

export interface NumberItem {
  value: string;
  /** "one": a weak 1 (also a pronoun). */
  weak: boolean;
}

export interface ContentWord {
  word: string;
  stem: string;
}

export interface Analysis {
  text: string;
  numbers: NumberItem[];
  /** The first negation seen ('' when none). */
  negation: string;
  /** Proper nouns and identifiers, lower-case. */
  names: string[];
  /** Every word (lower-case), each part of a compound token, and each whole compound token. */
  words: Set<string>;
  /** Stems of the words (computed when needed). */
  stems: Set<string> | undefined;
  /** The opposite words used (see OPPOSITE_FORMS): 2 * pair + side. */
  opposites: number[];
  /**
   * Stems of the content words (not stop words, negations, numbers, names or identifiers),
   * Latin, Greek and Cyrillic words only (elsewhere words are not reliably split or stemmed).
   */
  content: ContentWord[] | undefined;
  /** The tokens the content words come from (stemmed when needed). */
  contentTokens: string[];
  /** Quoted strings, lower-case, whitespace collapsed, without their quotes. */
  quotes: string[];
  /** The text lower-case, quote marks removed, whitespace collapsed (computed when needed). */
  flat: string | undefined;
}

/** The last analyses (a lookup checks one query against a few candidates). */
export const analyzeMemo = boundedMemo<Analysis>(analyze, 16);

function analyze(text: string): Analysis {
  const s = text.normalize('NFKC');
  const numbers: NumberItem[] = [];
  const names: string[] = [];
  const words = new Set<string>();
  const opposites: number[] = [];
  const contentTokens: string[] = [];
  const quotes: string[] = [];
  let negation = '';

  if (QUOTE_CHARS.test(s)) {
    for (const m of s.matchAll(QUOTED)) {
      const inner = flatten(m[1] ?? m[2] ?? m[3] ?? m[4] ?? m[5] ?? '');
      if (inner) quotes.push(inner);
    }
  }

  // Number words being read ("twenty five", "two thousand"): total so far, current group.
  let inWords = false;
  let wordTotal = 0;
  let wordGroup = 0;
  const flushWords = () => {
    if (inWords) numbers.push({ value: String(wordTotal + wordGroup), weak: false });
    inWords = false;
    wordTotal = 0;
    wordGroup = 0;
  };
  let sentenceStart = true;
  let prevLower = ''; // the previous token's core, lower-case
  let prevNumeric = false; // the previous token was a number (digits or number words)
  let pendingCurrency = ''; // "USD 100"

  const n = s.length;
  let i = 0;
  while (i < n) {
    // Whitespace; a line break starts a sentence.
    let newline = false;
    while (i < n && isSpaceCode(s.charCodeAt(i), s, i)) {
      if (s.charCodeAt(i) === 0x0a) newline = true;
      i++;
    }
    if (i >= n) break;
    if (newline) sentenceStart = true;
    const tokStart = i;
    while (i < n && !isSpaceCode(s.charCodeAt(i), s, i)) i++;
    const tokEnd = i;

    // The token's core: leading punctuation off (a currency symbol stays), trailing punctuation
    // off (a % stays, and a ) or ] when the core opens one).
    let b = tokStart;
    while (b < tokEnd) {
      const c = s.charCodeAt(b);
      if (isWordCode(c, s, b) || c === 0x5f || c === 0x24 || (c >= 0xa3 && CURRENCY_SYMBOLS.has(s[b]!))) break;
      b++;
    }
    let e = tokEnd;
    while (e > b) {
      const c = s.charCodeAt(e - 1);
      if (isWordCode(c, s, e - 1) || c === 0x5f || c === 0x25) break;
      if ((c === 0x29 && s.lastIndexOf('(', e - 2) >= b) || (c === 0x5d && s.lastIndexOf('[', e - 2) >= b)) break;
      e--;
    }
    // Does the token end a sentence? (its last character before closing quotes/brackets; not
    // the dot of Mr. Dr. etc.)
    let last = tokEnd - 1;
    while (last > tokStart && isClosing(s.charCodeAt(last))) last--;
    const lc = s.charCodeAt(last);
    const endsSentence =
      (lc === 0x2e && !TITLES.has(s.slice(tokStart, last).toLowerCase())) || lc === 0x21 || lc === 0x3f || lc === 0x3a || lc === 0x3b || (tokEnd - tokStart === 1 && (lc === 0x2d || lc === 0x2a || lc === 0x2022));

    if (b >= e || (sentenceStart && LIST_MARKER.test(s.slice(tokStart, tokEnd)))) {
      flushWords();
      prevLower = '';
      prevNumeric = false;
      if (endsSentence || b >= e) sentenceStart = sentenceStart || endsSentence;
      continue;
    }

    let core = s.slice(b, e);
    let lower = core.toLowerCase();
    // Possessive 's.
    if (lower.length > 2 && (lower.endsWith("'s") || lower.endsWith('’s'))) {
      core = core.slice(0, -2);
      lower = lower.slice(0, -2);
    }

    // One scan for the token's shape.
    let letters = 0;
    let uppers = 0;
    let lowers = 0;
    let digits = 0;
    let separators = 0; // anything else inside: _ . - ( ) / ...
    let camel = false;
    let code = false; // _ ( ) [ ] = / \ # @ inside
    let dotted = false; // a dot between two letters
    let slashes = 0; // a/b is "a or b"; a/b/c, /a/b a path
    for (let k = 0; k < core.length; k++) {
      const c = core.charCodeAt(k);
      if (c >= 0x61 && c <= 0x7a) {
        letters++;
        lowers++;
      } else if (c >= 0x41 && c <= 0x5a) {
        letters++;
        uppers++;
        if (k > 0 && lowers > 0 && isLowerAt(core, k - 1)) camel = true;
      } else if (c >= 0x30 && c <= 0x39) digits++;
      else if (c >= 0x80 && NON_ASCII_WORD_CHAR.test(core[k]!)) {
        letters++;
        if (NON_ASCII_UPPER.test(core[k]!)) {
          uppers++;
          if (k > 0 && lowers > 0 && isLowerAt(core, k - 1)) camel = true;
        } else lowers++;
      } else {
        separators++;
        if (c === 0x5f || c === 0x28 || c === 0x29 || c === 0x5b || c === 0x5d || c === 0x3d || c === 0x5c || c === 0x23 || c === 0x40) code = true;
        else if (c === 0x2f) slashes++;
        else if (c === 0x2e && k > 0 && k + 1 < core.length && isLetterAt(core, k - 1) && isLetterAt(core, k + 1)) dotted = true;
      }
    }

    // Negations: not, n't, without..., non-X, no-X ("not only", "not just": not a negation).
    if (!negation) {
      if (separators === 0 ? NEGATIONS.has(lower) && !(lower === 'not' && /^\s+(?:only|just)\b/i.test(s.slice(tokEnd, tokEnd + 8))) : NEGATED_FORM.test(lower)) negation = lower;
    }

    // Number words.
    if (digits === 0 && separators === 0) {
      const unit = UNITS.get(lower);
      const magnitude = MAGNITUDES.get(lower);
      if (unit !== undefined || (lower === 'one' && inWords && wordGroup % 100 !== 0 && wordGroup % 10 === 0)) {
        const u = unit ?? 1;
        if (inWords && wordGroup % 100 !== 0 && wordGroup % 10 === 0 && u < 10) wordGroup += u;
        else if (inWords && wordGroup === 0) wordGroup = u;
        else {
          flushWords();
          inWords = true;
          wordGroup = u;
        }
        words.add(lower);
        prevLower = lower;
        prevNumeric = true;
        sentenceStart = false;
        if (endsSentence) {
          flushWords();
          sentenceStart = true;
        }
        continue;
      }
      if (magnitude !== undefined) {
        if (inWords) {
          if (magnitude === 100) wordGroup = (wordGroup || 1) * 100;
          else {
            wordTotal += (wordGroup || 1) * magnitude;
            wordGroup = 0;
          }
        } else {
          const lastNum = numbers[numbers.length - 1];
          if (prevLower === 'a' || (prevLower === 'one' && lastNum?.weak)) {
            // "a thousand", "one hundred"
            if (lastNum?.weak && prevLower === 'one') numbers.pop();
            inWords = true;
            wordTotal = magnitude === 100 ? 0 : magnitude;
            wordGroup = magnitude === 100 ? 100 : 0;
          } else if (prevNumeric && lastNum && !lastNum.weak && /^[$€£¥₹]?\d+(?:\.\d+)?$/.test(lastNum.value)) {
            // "5 million", "$1.5 billion": scales the number before it.
            const cur = /^[$€£¥₹]/.test(lastNum.value) ? lastNum.value[0]! : '';
            lastNum.value = cur + String(Number(lastNum.value.slice(cur.length)) * magnitude);
          }
          // Alone ("thousands of", "several hundred"): a vague quantity, not a number.
        }
        words.add(lower);
        prevLower = lower;
        prevNumeric = true;
        sentenceStart = endsSentence;
        if (endsSentence) flushWords();
        continue;
      }
      if (inWords && lower === 'and') {
        // "two hundred and five"
        words.add(lower);
        prevLower = lower;
        continue;
      }
    }
    flushWords();

    // Currency and percent words after a number: "100 dollars", "10 percent".
    if (prevNumeric && digits === 0) {
      const lastNum = numbers[numbers.length - 1];
      if (lastNum && !lastNum.weak) {
        const currency = CURRENCY_WORDS.get(lower);
        let unit = false;
        if (currency && /^\d/.test(lastNum.value)) {
          lastNum.value = currency + lastNum.value;
          unit = true;
        } else if (PERCENT_WORDS.has(lower) && /^\d[\d.]*$/.test(lastNum.value)) {
          lastNum.value += '%';
          unit = true;
        }
        if (unit) {
          words.add(lower);
          prevLower = lower;
          prevNumeric = false;
          sentenceStart = endsSentence;
          continue;
        }
      }
    }
    if (lower === 'one') numbers.push({ value: '1', weak: true });

    // Numbers, versions, dates.
    if (digits > 0 && letters <= 2) {
      const m = NUMBER_TOKEN.exec(core);
      if (m) {
        numbers.push({ value: normalizeNumber(m[1] ?? pendingCurrency, m[2] !== undefined, m[3]!, (m[4] ?? '').toLowerCase()), weak: false });
        words.add(lower);
        pendingCurrency = '';
        prevLower = lower;
        prevNumeric = true;
        sentenceStart = endsSentence;
        continue;
      }
      if (letters === 0 && DATE_TOKEN.test(core)) {
        numbers.push({ value: core.replace(/\d+/g, (d) => String(Number(d))), weak: false });
        words.add(lower);
        prevLower = lower;
        prevNumeric = false;
        sentenceStart = endsSentence;
        continue;
      }
    }
    pendingCurrency = lower.length === 3 && letters === 3 ? (CURRENCY_CODES.get(lower) ?? '') : '';

    // Words, names, identifiers.
    let abbreviation = false;
    if (dotted && ABBREVIATION.test(core)) {
      // U.S. = US, e.g. = eg
      dotted = false;
      abbreviation = true;
      lower = lower.replace(/\./g, '');
    }
    words.add(lower);
    if (separators === 0 || abbreviation) {
      const o = OPPOSITE_FORMS.get(lower);
      if (o !== undefined && !opposites.includes(o)) opposites.push(o);
    } else {
      for (const part of lower.split(/[^\p{L}\p{N}]+/u)) if (part) words.add(part);
    }
    if (slashes >= 2 || (slashes > 0 && b > 0 && s.charCodeAt(b - 1) === 0x2f)) code = true;
    const identifier = letters > 0 && (code || dotted || camel || digits > 0);
    if (letters === 0 && digits > 0) {
      // Digits with symbols: 2+2, 3x4, 1/2.
      numbers.push({ value: lower, weak: false });
      prevLower = lower;
      prevNumeric = false;
      sentenceStart = endsSentence;
      continue;
    }
    // Content words (a capitalised word mid-sentence is a name: compared by the names check).
    if (!identifier && lowers > 0 && digits === 0 && !(uppers > 0 && !sentenceStart) && !negationWord(lower)) contentTokens.push(lower);
    if (identifier) {
      names.push(lower.endsWith('()') ? lower.slice(0, -2) : lower);
    } else if (uppers > 0 && startsUpper(core) && !NOT_NAMES.has(lower)) {
      // Capitalised mid-sentence, or an acronym anywhere.
      if (!sentenceStart || (uppers >= 2 && lowers === 0)) names.push(lower);
    }
    prevLower = lower;
    prevNumeric = false;
    sentenceStart = endsSentence;
  }
  flushWords();

  return { text: s, numbers, negation, names: [...new Set(names)], words, stems: undefined, opposites, content: undefined, contentTokens, quotes, flat: undefined };
}

function negationWord(lower: string): boolean {
  return NEGATIONS.has(lower) || NEGATED_FORM.test(lower);
}

export function contentOf(a: Analysis): ContentWord[] {
  if (!a.content) {
    a.content = [];
    for (const t of a.contentTokens) addContent(a.content, t);
  }
  return a.content;
}

/** Adds the content word(s) of a token (hyphenated: each part) unless stop words. */
function addContent(content: ContentWord[], lower: string): void {
  let start = 0;
  for (let k = 0; k <= lower.length; k++) {
    const c = k < lower.length ? lower.charCodeAt(k) : 0x20;
    const letter = (c >= 0x61 && c <= 0x7a) || (c >= 0xc0 && c < 0x530 && c !== 0xd7 && c !== 0xf7);
    if (letter) continue;
    if (k - start >= 2) {
      const w = lower.slice(start, k);
      if (!isStopWord(w)) {
        const st = stem(w);
        if (!content.some((x) => x.stem === st)) content.push({ word: w, stem: st });
      }
    } else if (k - start === 0 && c >= 0x80 && k < lower.length) {
      return; // another script: not compared
    }
    start = k + 1;
  }
}

function flatten(s: string): string {
  return s.toLowerCase().replace(/["“”`‘’']/g, '').replace(/\s+/g, ' ').trim();
}

export function stemsOf(a: Analysis): Set<string> {
  if (!a.stems) {
    a.stems = new Set<string>();
    for (const w of a.words) a.stems.add(stem(w));
  }
  return a.stems;
}

export function flatOf(a: Analysis): string {
  a.flat ??= flatten(a.text);
  return a.flat;
}
