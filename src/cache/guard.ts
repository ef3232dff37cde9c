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
import { analyzeMemo, contentOf, flatOf, stemsOf, type Analysis, type NumberItem } from './guard-analysis.js';
import { isWordCode, OPPOSITE_WORDS } from './guard-lexicon.js';
import type { GuardVerdict, HitGuard } from './types.js';
import { sameStem, stem } from './words.js';

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
      const onlyQ = qc.filter((w) => !cc.some((x) => sameStem(w.stem, x.stem)));
      if (onlyQ.length) {
        const onlyC = cc.filter((w) => !qc.some((x) => sameStem(w.stem, x.stem)));
        if (onlyC.length) return { ok: false, reason: `different words: ${list(onlyQ.map((w) => w.word))} vs ${list(onlyC.map((w) => w.word))}` };
      }
    }
    return { ok: true };
  }
}

export function createHitGuard(opts: HitGuardOptions = {}): HitGuard {
  return new DefaultHitGuard(opts);
}

function list(items: string[], quote = false): string {
  if (!items.length) return '(none)';
  const shown = items.slice(0, MAX_LISTED).map((s) => (quote ? `"${s.length > 40 ? `${s.slice(0, 40)}...` : s}"` : s));
  return shown.join(', ') + (items.length > MAX_LISTED ? ', ...' : '');
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
