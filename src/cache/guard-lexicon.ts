/**
 * What the false-hit guard's analysis (guard-analysis.ts) recognises in a text: negation words,
 * words that are never names, number words, currencies and percent words, the patterns of numbers,
 * dates, list markers, quotes and abbreviations, character classes, the normal form of a number,
 * and the pairs of opposite words with their inflected forms.
 */

export const NEGATIONS = new Set([
  'not', 'no', 'never', 'none', 'nobody', 'nothing', 'nowhere', 'neither', 'nor', 'without',
  'cannot', 'unable', 'nope', 'noone',
]);

/** Words that are not names even when capitalised mid-sentence (titles, headings, "I"). */
export const NOT_NAMES = new Set([
  'i', 'a', 'an', 'the', 'this', 'that', 'these', 'those', 'it', 'its', 'is', 'are', 'and', 'or',
  'but', 'of', 'in', 'on', 'to', 'for', 'with', 'by', 'at', 'as', 'if', 'what', 'which', 'who',
  'how', 'why', 'when', 'where', 'you', 'your', 'we', 'my', 'me', 'ok', 'okay', 'yes', 'no', 'not',
]);

export const UNITS = new Map<string, number>(Object.entries({
  zero: 0, two: 2, three: 3, four: 4, five: 5, six: 6, seven: 7, eight: 8, nine: 9, ten: 10,
  eleven: 11, twelve: 12, thirteen: 13, fourteen: 14, fifteen: 15, sixteen: 16, seventeen: 17,
  eighteen: 18, nineteen: 19, twenty: 20, thirty: 30, forty: 40, fifty: 50, sixty: 60,
  seventy: 70, eighty: 80, ninety: 90,
}));
export const MAGNITUDES = new Map<string, number>(Object.entries({ hundred: 100, thousand: 1e3, million: 1e6, billion: 1e9, trillion: 1e12 }));
export const CURRENCY_SYMBOLS = new Map<string, string>(['$', '€', '£', '¥', '₹'].map((c) => [c, c]));
export const CURRENCY_CODES = new Map<string, string>(Object.entries({ usd: '$', eur: '€', gbp: '£', jpy: '¥', inr: '₹' }));
export const CURRENCY_WORDS = new Map<string, string>([
  ...CURRENCY_CODES,
  ...Object.entries({ dollar: '$', dollars: '$', bucks: '$', euro: '€', euros: '€', pound: '£', pounds: '£', yen: '¥', rupee: '₹', rupees: '₹' }),
]);
export const PERCENT_WORDS = new Set(['percent', 'pct']);

/** A number: 1000, 1,000, 1.5, v2.10.0, 10%, $5, $5m, 5k, 3rd, 1990s (groups: currency, v, digits, suffix). */
export const NUMBER_TOKEN = /^([$€£¥₹])?(v)?(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)*)(%|k|mm|mn|m|bn|b|st|nd|rd|th|s)?$/i;
/** Date- or time-like: 2024-03-05, 05/03/2024, 10:30. */
export const DATE_TOKEN = /^\d+(?:[-/:]\d+)+$/;
/** A list marker at the start of a line: 1. 2) a. */
export const LIST_MARKER = /^(?:\d{1,3}|[a-z])[.)]$/i;
export const QUOTED = /"([^"\n]{1,200})"|“([^”\n]{1,200})”|`([^`\n]{1,200})`|‘([^’\n]{1,200})’|(?<![\p{L}\p{N}])'([^'\n]{1,200})'(?![\p{L}\p{N}])/gu;
export const QUOTE_CHARS = /["“`‘']/;
/** Abbreviations whose dot does not end a sentence. */
export const TITLES = new Set(['mr', 'mrs', 'ms', 'dr', 'prof', 'st', 'sr', 'jr', 'vs', 'etc', 'fig', 'approx', 'e.g', 'i.e', 'cf']);
/** e.g, i.e, u.s.a: not dotted identifiers. */
export const ABBREVIATION = /^(?:\p{L}\.)+\p{L}?$/u;
/** Negated forms written as one token: don't, can’t, non-blocking, no-code. */
export const NEGATED_FORM = /n['’]t$|^non?-\p{L}/u;
export const NON_ASCII_WORD_CHAR = /[\p{L}\p{N}\p{M}]/u;
export const NON_ASCII_UPPER = /\p{Lu}/u;
const NON_ASCII_SPACE = /\s/u;

export function isWordCode(c: number, s: string, i: number): boolean {
  if (c < 0x80) return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39);
  return NON_ASCII_WORD_CHAR.test(s[i]!);
}

export function isSpaceCode(c: number, s: string, i: number): boolean {
  if (c < 0x80) return c === 0x20 || (c >= 0x09 && c <= 0x0d);
  return NON_ASCII_SPACE.test(s[i]!);
}

export function isLowerAt(s: string, k: number): boolean {
  const c = s.charCodeAt(k);
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x80 && NON_ASCII_WORD_CHAR.test(s[k]!) && !NON_ASCII_UPPER.test(s[k]!));
}

export function isLetterAt(s: string, k: number): boolean {
  const c = s.charCodeAt(k);
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x80 && NON_ASCII_WORD_CHAR.test(s[k]!));
}

export function startsUpper(core: string): boolean {
  const c = core.charCodeAt(0);
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x80 && NON_ASCII_UPPER.test(String.fromCodePoint(core.codePointAt(0)!)));
}

export function isClosing(c: number): boolean {
  return c === 0x22 || c === 0x27 || c === 0x29 || c === 0x5d || c === 0x2a || c === 0x201d || c === 0x2019;
}

export function normalizeNumber(currency: string, version: boolean, digits: string, suffix: string): string {
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
export const OPPOSITE_FORMS = new Map<string, number>();
/** 2 * pair + side -> the word (for reasons). */
export const OPPOSITE_WORDS: string[] = [];
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
