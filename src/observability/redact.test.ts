import { describe, expect, it } from 'vitest';
import { luhnValid, redact, redactCapped } from './redact.js';

describe('redact', () => {
  it('replaces email addresses', () => {
    expect(redact('Mail john.doe+tag@example.co.uk or ops@tollgate.dev today')).toBe('Mail [email] or [email] today');
  });

  it('replaces Luhn-valid card numbers, written with spaces, dashes or not at all', () => {
    expect(redact('card 4111 1111 1111 1111, exp 12/29')).toBe('card [card], exp 12/29');
    expect(redact('4111-1111-1111-1111')).toBe('[card]');
    expect(redact('pay with 5555555555554444.')).toBe('pay with [card].');
    expect(redact('amex 3782 822463 10005 ok')).toBe('amex [card] ok'); // 15 digits
    expect(redact('4222222222222')).toBe('[card]'); // 13 digits
  });

  it('keeps digit runs that fail the Luhn check or are too short or too long', () => {
    expect(redact('ref 4111 1111 1111 1112')).toBe('ref 4111 1111 1111 1112');
    expect(redact('order 123456789012')).toBe('order 123456789012'); // 12 digits
    expect(redact('hash 41111111111111110000000')).toBe('hash 41111111111111110000000'); // 25 digits
  });

  it('replaces phone numbers in common formats', () => {
    const texts = ['call +1 (555) 123-4567 now', '+44 20 7946 0958', '+33612345678', '(555) 123 4567', '555-123-4567 or 555.123.4567'];
    expect(texts.map((t) => redact(t))).toEqual(['call [phone] now', '[phone]', '[phone]', '[phone]', '[phone] or [phone]']);
  });

  it('keeps dates, versions, amounts, IP addresses and plain numbers', () => {
    const text = 'On 2026-11-01 v1.2.3 cost $1,234.50 at 192.168.100.200; pi is 3.14159265 and the year 2024; id 12345678';
    expect(redact(text)).toBe(text);
  });

  it('leaves text without digits or @ untouched', () => {
    expect(redact('hello world')).toBe('hello world');
  });

  it('checks Luhn sums', () => {
    expect(luhnValid('79927398713')).toBe(true);
    expect(luhnValid('79927398710')).toBe(false);
    expect(luhnValid('')).toBe(false);
  });
});

describe('redactCapped', () => {
  it('caps the text and marks the cut', () => {
    expect(redactCapped('abcdefghij', 4)).toBe('abcd…');
    expect(redactCapped('abcd', 4)).toBe('abcd');
  });

  it('redacts a number or address that the cap cuts through: no partial digits leak', () => {
    const text = `${'x'.repeat(10)} 4111 1111 1111 1111 and more`;
    const capped = redactCapped(text, 15);
    expect(capped).not.toMatch(/4111/);
    expect(capped.startsWith(`${'x'.repeat(10)} [car`)).toBe(true);
    expect(redactCapped(`${'y'.repeat(5)} jane@example.com`, 8)).toBe('yyyyy [e…');
  });

  it('examines only the head of a huge text', () => {
    const huge = `alice@example.com ${'z'.repeat(1_000_000)}`;
    expect(redactCapped(huge, 30)).toBe(`[email] ${'z'.repeat(22)}…`);
  });
});
