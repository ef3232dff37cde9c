/**
 * Redaction of personal data in text the request log keeps (prompts and answers of tenants that
 * opted in): email addresses, card-like numbers and phone numbers are replaced by `[email]`,
 * `[card]` and `[phone]` before anything leaves the process. The rules lean toward privacy but
 * keep ordinary numbers (dates, versions, amounts, ids without separators) readable:
 * - email: `local@domain.tld`;
 * - card: a run of 13 to 19 digits, optionally split by single spaces or dashes, that passes the
 *   Luhn check (a failing run is not a card number; it stays unless it looks like a phone);
 * - phone: 7 to 15 digits that start with `+` (country code), or hold a parenthesized area code,
 *   or come in at least three groups split by spaces, dots or dashes (`555-123-4567`); ISO dates
 *   and dotted IPv4 addresses are not phones.
 */

// Bounded pieces (RFC 5321 lengths): unbounded ones made a long run of letters quadratic.
const EMAIL = /[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,8}\.[A-Za-z]{2,24}/g;
const CARD = /(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)/g;
const PHONE = /(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,5}\)[ .-]?)?\d+(?:[ .-]\d+){0,5}(?!\w)/g;
const ISO_DATE = /\d{4}-\d{2}-\d{2}/;
const IPV4 = /^\d{1,3}(?:\.\d{1,3}){3}$/;

/** Whether a digit string passes the Luhn checksum (payment card numbers do). */
export function luhnValid(digits: string): boolean {
  let sum = 0;
  let double = false;
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return false;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return digits.length > 0 && sum % 10 === 0;
}

function card(match: string): string {
  const digits = match.replace(/[ -]/g, '');
  return digits.length >= 13 && digits.length <= 19 && luhnValid(digits) ? '[card]' : match;
}

function phone(match: string): string {
  const digits = match.replace(/\D/g, '').length;
  if (digits < 7 || digits > 15) return match;
  const international = match.startsWith('+');
  const areaCode = match.includes('(');
  const groups = match.split(/[ .()-]+/).filter(Boolean).length;
  if (!international && !areaCode && groups < 3) return match;
  if (ISO_DATE.test(match) || IPV4.test(match)) return match;
  return '[phone]';
}

/** The text with emails, card-like numbers and phone numbers replaced. */
export function redact(text: string): string {
  if (!/\d|@/.test(text)) return text;
  return text.replace(EMAIL, '[email]').replace(CARD, card).replace(PHONE, phone);
}

/** Margin read past the cap, so a number or address cut by the cap is still recognized (and redacted). */
const MARGIN = 256;

/**
 * Redacted text of at most `maxChars` characters (then `…` marks the cut). Only the first
 * `maxChars` plus a margin are examined, so a huge prompt costs no more than a capped one.
 */
export function redactCapped(text: string, maxChars: number): string {
  const head = text.length > maxChars + MARGIN ? text.slice(0, maxChars + MARGIN) : text;
  const clean = redact(head);
  return clean.length > maxChars || head.length < text.length ? `${clean.slice(0, maxChars)}…` : clean;
}
