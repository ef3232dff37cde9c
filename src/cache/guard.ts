/**
 * The false-hit guard: a semantic near hit (similar wording) is served only when the details a
 * similarity score overlooks agree. Pure, synchronous, a few microseconds per check.
 *
 * Checks (each can be switched off):
 * - numbers: the numbers, amounts, percentages, versions and dates of both texts must be the same
 *   set. "1,000" = "1000" = "1k", "1.50" = "1.5", "v2.10" = "2.10", "$100" = "100 dollars",
 *   "10%" = "10 percent", number words count ("twenty five" = 25, "two thousand" = 2000); "$100"
 *   and "$1000" differ, and so do "$100" and "100" (a currency on one side only). "one" alone is
 *   a weak 1 (often a pronoun): it only fails against a different number on the other side.
 * - negations: either both texts contain a negation (not, no, never, n't, without, none,
 *   nothing, cannot...) or neither does.
 * - names: proper nouns (capitalised words that do not start a sentence, acronyms), code
 *   identifiers (snake_case, camelCase, dotted.names, calls(), words mixing letters and digits),
 *   and quoted or `backticked` strings of either text must appear in the other. Compared as
 *   sets, case-insensitively (a name may start a sentence in the other text, or be lower-case
 *   there), so reordered paraphrases pass. A capitalised word that starts a sentence is not taken
 *   for a name.
 * - opposites: one text uses a word and the other its opposite (increase / decrease, before /
 *   after, enable / disable, upload / download, max / min...) without the first.
 * - substitutions (off by default): in a short text, a content word replaced by another
 *   ("time complexity" / "space complexity").
 *
 * A text with none of these details (no numbers, names, negations or opposites) passes every
 * check: the similarity threshold alone decides. Order is not compared ("from London to Paris"
 * and "from Paris to London" pass): the details are compared as sets.
 */
import { isStopWord, stem } from './embedders/builtin.js';
import type { GuardVerdict, HitGuard } from './types.js';
import { boundedMemo } from '../util/memo.js';

export interface HitGuardOptions {
  /** Numbers, amounts, percentages, versions and dates must match as sets (default on). */
  numbers?: boolean;
  /** Negations must agree (default on). */
  negations?: boolean;
  /** Proper nouns, code identifiers and quoted strings must appear in both (default on). */
  names?: boolean;
  /** No word in one text whose opposite is in the other (default on). */
  opposites?: boolean;
  /**
   * Short texts (at most SHORT_TEXT_CONTENT_WORDS content words): no content word replaced by
   * another (default off: it also refuses short paraphrases that use a synonym, which a lexical
   * check cannot tell apart; on the dev data, at 0.575, it cost 7.6 points of positive hit rate
   * for 0.3 points less of look-alike-only wrong answers).
   */
  substitutions?: boolean;
}

/**
 * A text with at most this many content words is short: every content word carries the
 * question, so one replaced by another ("time complexity" / "space complexity") fails.
 */
export const SHORT_TEXT_CONTENT_WORDS = 3;

/** At most this many differing items are named in a reason. */
const MAX_LISTED = 3;

export class DefaultHitGuard implements HitGuard {
  private readonly numbers: boolean;
  private readonly negations: boolean;
  private readonly names: boolean;
  private readonly opposites: boolean;
  private readonly substitutions: boolean;

  constructor(opts: HitGuardOptions = {}) {
    this.numbers = opts.numbers ?? true;
    this.negations = opts.negations ?? true;
    this.names = opts.names ?? true;
    this.opposites = opts.opposites ?? true;
    this.substitutions = opts.substitutions ?? false;
  }

  check(query: string, cached: string): GuardVerdict {
    if (query === cached) return { ok: true };
    const q = analyzeMemo(query);
    const c = analyzeMemo(cached);

    if (this.numbers) {
      const reason = compareNumbers(q.numbers, c.numbers);
      if (reason) return { ok: false, reason };
    }
    if (this.negations && (q.negation === '') !== (c.negation === '')) {
      return { ok: false, reason: `negation differs: ${q.negation ? `"${q.negation}" in the question only` : `"${c.negation}" in the cached question only`}` };
    }
    if (this.names) {
      const missingInCached = q.names.filter((n) => !mentions(c, n));
      const missingInQuery = c.names.filter((n) => !mentions(q, n));
      if (missingInCached.length || missingInQuery.length) {
        return { ok: false, reason: `names differ: ${list(missingInCached)} vs ${list(missingInQuery)}` };
      }
      const quotesQ = q.quotes.filter((s) => !c.quotes.includes(s) && !flatOf(c).includes(s));
      const quotesC = c.quotes.filter((s) => !q.quotes.includes(s) && !flatOf(q).includes(s));
      if (quotesQ.length || quotesC.length) {
        return { ok: false, reason: `quoted text differs: ${list(quotesQ, true)} vs ${list(quotesC, true)}` };
      }
    }
    if (this.opposites && q.opposites.length && c.opposites.length) {
      // Sides are 2 * pair + (0 | 1): x ^ 1 is the opposite of x.
      for (const x of q.opposites) {
        const y = x ^ 1;
        if (!q.opposites.includes(y) && c.opposites.includes(y) && !c.opposites.includes(x)) {
          return { ok: false, reason: `opposite words: ${OPPOSITE_WORDS[x]} vs ${OPPOSITE_WORDS[y]}` };
        }
      }
    }
    if (this.substitutions && Math.min(contentOf(q).length, contentOf(c).length) <= SHORT_TEXT_CONTENT_WORDS) {
      const qc = contentOf(q);
      const cc = contentOf(c);
      const onlyQ = qc.filter((w) => !cc.some((x) => sameWord(w.stem, x.stem)));
      if (onlyQ.length) {
        const onlyC = cc.filter((w) => !qc.some((x) => sameWord(w.stem, x.stem)));
        if (onlyC.length) return { ok: false, reason: `different words: ${list(onlyQ.map((w) => w.word))} vs ${list(onlyC.map((w) => w.word))}` };
      }
    }
    return { ok: true };
  }
}

/** Two content words (stems) are the same when equal or when they share a long prefix (utilize, utilization). */
function sameWord(a: string, b: string): boolean {
  if (a === b) return true;
  const n = Math.min(a.length, b.length);
  let k = 0;
  while (k < n && a.charCodeAt(k) === b.charCodeAt(k)) k++;
  return k >= 4 && k >= 0.6 * n;
}

export function createHitGuard(opts: HitGuardOptions = {}): HitGuard {
  return new DefaultHitGuard(opts);
}

function list(items: string[], quote = false): string {
  if (!items.length) return '(none)';
  const shown = items.slice(0, MAX_LISTED).map((s) => (quote ? `"${s.length > 40 ? `${s.slice(0, 40)}...` : s}"` : s));
  return shown.join(', ') + (items.length > MAX_LISTED ? ', ...' : '');
}

/* ------------------------------------------------------------------------------------------ */
/* Analysis of one text                                                                        */
/* ------------------------------------------------------------------------------------------ */

interface NumberItem {
  value: string;
  /** "one": a weak 1 (also a pronoun). */
  weak: boolean;
}

interface ContentWord {
  word: string;
  stem: string;
}

interface Analysis {
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

const NEGATIONS = new Set([
  'not', 'no', 'never', 'none', 'nobody', 'nothing', 'nowhere', 'neither', 'nor', 'without',
  'cannot', 'unable', 'nope', 'noone',
]);

/** Words that are not names even when capitalised mid-sentence (titles, headings, "I"). */
const NOT_NAMES = new Set([
  'i', 'a', 'an', 'the', 'this', 'that', 'these', 'those', 'it', 'its', 'is', 'are', 'and', 'or',
  'but', 'of', 'in', 'on', 'to', 'for', 'with', 'by', 'at', 'as', 'if', 'what', 'which', 'who',
  'how', 'why', 'when', 'where', 'you', 'your', 'we', 'my', 'me', 'ok', 'okay', 'yes', 'no', 'not',
]);

const UNITS = new Map<string, number>(Object.entries({
  zero: 0, two: 2, three: 3, four: 4, five: 5, six: 6, seven: 7, eight: 8, nine: 9, ten: 10,
  eleven: 11, twelve: 12, thirteen: 13, fourteen: 14, fifteen: 15, sixteen: 16, seventeen: 17,
  eighteen: 18, nineteen: 19, twenty: 20, thirty: 30, forty: 40, fifty: 50, sixty: 60,
  seventy: 70, eighty: 80, ninety: 90,
}));
const MAGNITUDES = new Map<string, number>(Object.entries({ hundred: 100, thousand: 1e3, million: 1e6, billion: 1e9, trillion: 1e12 }));
const CURRENCY_SYMBOLS = new Map<string, string>(['$', '€', '£', '¥', '₹'].map((c) => [c, c]));
const CURRENCY_CODES = new Map<string, string>(Object.entries({ usd: '$', eur: '€', gbp: '£', jpy: '¥', inr: '₹' }));
const CURRENCY_WORDS = new Map<string, string>([
  ...CURRENCY_CODES,
  ...Object.entries({ dollar: '$', dollars: '$', bucks: '$', euro: '€', euros: '€', pound: '£', pounds: '£', yen: '¥', rupee: '₹', rupees: '₹' }),
]);
const PERCENT_WORDS = new Set(['percent', 'pct']);

/** A number: 1000, 1,000, 1.5, v2.10.0, 10%, $5, $5m, 5k, 3rd, 1990s (groups: currency, v, digits, suffix). */
const NUMBER_TOKEN = /^([$€£¥₹])?(v)?(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)*)(%|k|mm|mn|m|bn|b|st|nd|rd|th|s)?$/i;
/** Date- or time-like: 2024-03-05, 05/03/2024, 10:30. */
const DATE_TOKEN = /^\d+(?:[-/:]\d+)+$/;
/** A list marker at the start of a line: 1. 2) a. */
const LIST_MARKER = /^(?:\d{1,3}|[a-z])[.)]$/i;
const QUOTED = /"([^"\n]{1,200})"|“([^”\n]{1,200})”|`([^`\n]{1,200})`|‘([^’\n]{1,200})’|(?<![\p{L}\p{N}])'([^'\n]{1,200})'(?![\p{L}\p{N}])/gu;
const QUOTE_CHARS = /["“`‘']/;
/** Abbreviations whose dot does not end a sentence. */
const TITLES = new Set(['mr', 'mrs', 'ms', 'dr', 'prof', 'st', 'sr', 'jr', 'vs', 'etc', 'fig', 'approx', 'e.g', 'i.e', 'cf']);
/** e.g, i.e, u.s.a: not dotted identifiers. */
const ABBREVIATION = /^(?:\p{L}\.)+\p{L}?$/u;
/** Negated forms written as one token: don't, can’t, non-blocking, no-code. */
const NEGATED_FORM = /n['’]t$|^non?-\p{L}/u;
const NON_ASCII_WORD_CHAR = /[\p{L}\p{N}\p{M}]/u;
const NON_ASCII_UPPER = /\p{Lu}/u;
const NON_ASCII_SPACE = /\s/u;

function isWordCode(c: number, s: string, i: number): boolean {
  if (c < 0x80) return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39);
  return NON_ASCII_WORD_CHAR.test(s[i]!);
}

function isSpaceCode(c: number, s: string, i: number): boolean {
  if (c < 0x80) return c === 0x20 || (c >= 0x09 && c <= 0x0d);
  return NON_ASCII_SPACE.test(s[i]!);
}

/** The last analyses (a lookup checks one query against a few candidates). */
const analyzeMemo = boundedMemo<Analysis>(analyze, 16);

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

function contentOf(a: Analysis): ContentWord[] {
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

function isLowerAt(s: string, k: number): boolean {
  const c = s.charCodeAt(k);
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x80 && NON_ASCII_WORD_CHAR.test(s[k]!) && !NON_ASCII_UPPER.test(s[k]!));
}

function isLetterAt(s: string, k: number): boolean {
  const c = s.charCodeAt(k);
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x80 && NON_ASCII_WORD_CHAR.test(s[k]!));
}

function startsUpper(core: string): boolean {
  const c = core.charCodeAt(0);
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x80 && NON_ASCII_UPPER.test(String.fromCodePoint(core.codePointAt(0)!)));
}

function flatten(s: string): string {
  return s.toLowerCase().replace(/["“”`‘’']/g, '').replace(/\s+/g, ' ').trim();
}

function isClosing(c: number): boolean {
  return c === 0x22 || c === 0x27 || c === 0x29 || c === 0x5d || c === 0x2a || c === 0x201d || c === 0x2019;
}

function stemsOf(a: Analysis): Set<string> {
  if (!a.stems) {
    a.stems = new Set<string>();
    for (const w of a.words) a.stems.add(stem(w));
  }
  return a.stems;
}

function flatOf(a: Analysis): string {
  a.flat ??= flatten(a.text);
  return a.flat;
}

function normalizeNumber(currency: string, version: boolean, digits: string, suffix: string): string {
  const cur = CURRENCY_SYMBOLS.get(currency) ?? currency;
  const body = digits.replace(/,/g, '');
  if (version || body.split('.').length > 2) {
    // A version: 2.10.0 (each part without leading zeros).
    return body.split('.').map((p) => String(Number(p))).join('.');
  }
  let value = Number(body);
  let unit = '';
  if (suffix === 'k') value *= 1e3;
  else if (cur && (suffix === 'm' || suffix === 'mm' || suffix === 'mn')) value *= 1e6;
  else if (cur && (suffix === 'b' || suffix === 'bn')) value *= 1e9;
  else if (suffix === '%' || suffix === 's' || suffix === 'm' || suffix === 'mm' || suffix === 'mn' || suffix === 'b' || suffix === 'bn') unit = suffix;
  // st, nd, rd, th: an ordinal, the same number.
  return cur + String(value) + unit;
}

/** Whether `a` mentions the name `name` (a word or part of one, or with(out) a plural s, or the same stem). */
function mentions(a: Analysis, name: string): boolean {
  if (a.words.has(name)) return true;
  if (name.endsWith('s') && a.words.has(name.slice(0, -1))) return true;
  if (a.words.has(`${name}s`)) return true;
  for (let k = 0; k < name.length; k++) {
    if (!isWordCode(name.charCodeAt(k), name, k)) {
      // A compound (dotted.name, snake_case, call()): the same characters somewhere in the text,
      // or each of its parts.
      if (flatOf(a).includes(name)) return true;
      for (const part of name.split(/[^\p{L}\p{N}]+/u)) if (part && !a.words.has(part)) return false;
      return true;
    }
  }
  return stemsOf(a).has(stem(name));
}

function compareNumbers(q: NumberItem[], c: NumberItem[]): string | undefined {
  if (!q.length && !c.length) return undefined;
  const qs = new Map<string, boolean>();
  for (const x of q) qs.set(x.value, (qs.get(x.value) ?? true) && x.weak);
  const cs = new Map<string, boolean>();
  for (const x of c) cs.set(x.value, (cs.get(x.value) ?? true) && x.weak);
  const onlyQ = [...qs].filter(([v]) => !cs.has(v));
  const onlyC = [...cs].filter(([v]) => !qs.has(v));
  // Only weak ones ("one") differ: fine.
  if (onlyQ.every(([, weak]) => weak) && onlyC.every(([, weak]) => weak)) return undefined;
  return `numbers differ: ${list(onlyQ.map(([v]) => v))} vs ${list(onlyC.map(([v]) => v))}`;
}

/* ------------------------------------------------------------------------------------------ */
/* Opposites                                                                                   */
/* ------------------------------------------------------------------------------------------ */

const OPPOSITES: Array<[string, string]> = [
  ['increase', 'decrease'], ['more', 'less'], ['most', 'least'], ['higher', 'lower'], ['high', 'low'],
  ['larger', 'smaller'], ['largest', 'smallest'], ['bigger', 'smaller'], ['biggest', 'smallest'],
  ['max', 'min'], ['maximum', 'minimum'], ['before', 'after'], ['above', 'below'],
  ['enable', 'disable'], ['add', 'remove'], ['upload', 'download'], ['import', 'export'],
  ['encrypt', 'decrypt'], ['input', 'output'], ['first', 'last'], ['true', 'false'],
  ['open', 'close'], ['start', 'stop'], ['allow', 'deny'], ['accept', 'reject'],
  ['include', 'exclude'], ['buy', 'sell'], ['push', 'pull'], ['win', 'lose'],
  ['positive', 'negative'], ['faster', 'slower'], ['fastest', 'slowest'], ['cheaper', 'pricier'],
  ['better', 'worse'], ['best', 'worst'], ['inside', 'outside'], ['internal', 'external'],
  ['public', 'private'], ['synchronous', 'asynchronous'], ['sync', 'async'], ['lazy', 'eager'],
  ['client', 'server'], ['login', 'logout'], ['connect', 'disconnect'], ['lock', 'unlock'],
  ['install', 'uninstall'], ['subscribe', 'unsubscribe'], ['encode', 'decode'], ['compress', 'decompress'],
  ['success', 'failure'], ['valid', 'invalid'], ['legal', 'illegal'], ['safe', 'unsafe'],
  ['north', 'south'], ['east', 'west'], ['young', 'old'], ['cold', 'hot'], ['day', 'night'],
  ['men', 'women'], ['male', 'female'], ['boy', 'girl'], ['debit', 'credit'],
  ['deposit', 'withdraw'], ['arrival', 'departure'], ['arrive', 'depart'], ['morning', 'evening'],
];
/** Inflected forms of the opposites: form -> 2 * pair + side. */
const OPPOSITE_FORMS = new Map<string, number>();
/** 2 * pair + side -> the word (for reasons). */
const OPPOSITE_WORDS: string[] = [];
OPPOSITES.forEach((pair, p) => {
  pair.forEach((word, side) => {
    const id = 2 * p + side;
    OPPOSITE_WORDS[id] = word;
    for (const form of inflections(word)) if (!OPPOSITE_FORMS.has(form)) OPPOSITE_FORMS.set(form, id);
  });
});

/** A word's regular inflections: add, adds, added, adding; close, closes, closed, closing; stop, stopped. */
function inflections(w: string): string[] {
  const out = [w, `${w}s`, `${w}es`, `${w}ed`, `${w}d`, `${w}ing`];
  if (w.endsWith('e')) out.push(`${w.slice(0, -1)}ing`);
  if (w.endsWith('y')) out.push(`${w.slice(0, -1)}ies`, `${w.slice(0, -1)}ied`);
  if (/[^aeiou][aeiou][bdgklmnprt]$/.test(w)) out.push(`${w}${w.slice(-1)}ed`, `${w}${w.slice(-1)}ing`);
  return out;
}
