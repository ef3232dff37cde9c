import { describe, expect, it } from 'vitest';
import { createHitGuard, DefaultHitGuard } from './guard.js';

const guard = new DefaultHitGuard();

function rejects(q: string, c: string): string {
  const v = guard.check(q, c);
  expect(v.ok, `expected a rejection:\n  ${q}\n  ${c}`).toBe(false);
  return v.ok ? '' : v.reason;
}

function passes(q: string, c: string): void {
  const v = guard.check(q, c);
  expect(v, `expected a pass:\n  ${q}\n  ${c}`).toEqual({ ok: true });
}

describe('DefaultHitGuard: numbers', () => {
  it('rejects $100 vs $1000 (the required case)', () => {
    const reason = rejects('What is the refund policy for orders over $100?', 'What is the refund policy for orders over $1000?');
    expect(reason).toBe('numbers differ: $100 vs $1000');
  });

  it('passes paraphrases with the same amounts', () => {
    passes('What is the refund policy for orders over $100?', "What's the refund policy on orders above $100?");
    passes('Can I return orders over $1,000?', 'Is it possible to return an order above $1000?');
    passes('Orders over 100 dollars: what is the refund policy?', 'What is the refund policy for orders over $100?');
  });

  it('normalises number formats', () => {
    passes('Is 1,000,000 rows too many?', 'Are 1000000 rows too many?');
    passes('Does a 10% discount apply?', 'Is there a ten percent discount?');
    passes('What changed in v2.10.0?', 'What changed in version 2.10.0?');
    passes('How old are people born in 1990?', 'How old is someone born in 1990?');
    passes('Twenty five apples', '25 apples');
    passes('A budget of $1.5 million', 'A budget of $1,500,000');
    passes('Deliver 10k messages', 'Deliver 10000 messages');
    passes('Price is 1.50 euros', 'The price is €1.5');
  });

  it('rejects different numbers, versions, dates and percentages', () => {
    rejects('What changed in version 2.10.0?', 'What changed in version 2.11.0?');
    rejects('What happened on 2024-03-05?', 'What happened on 2024-03-06?');
    rejects('Is a 10% tip enough?', 'Is a 15% tip enough?');
    rejects('Is a 10% tip enough?', 'Is a 10 dollar tip enough?');
    rejects('How do I book a table for two?', 'How do I book a table for four?');
    rejects('Convert 5 km to miles', 'Convert km to miles');
    rejects('Can I bring one bag?', 'Can I bring two bags?');
  });

  it('treats "one" alone as a weak number (often a pronoun)', () => {
    passes('How can one reset a password?', 'How do I reset a password?');
  });
});

describe('DefaultHitGuard: negations', () => {
  it('rejects when one side is negated', () => {
    expect(rejects('Can I cancel my subscription?', "Can't I cancel my subscription?")).toMatch(/^negation differs/);
    rejects('Which foods contain gluten?', 'Which foods contain no gluten?');
    rejects('How to run the app with Docker', 'How to run the app without Docker');
    rejects('Why does the build succeed?', 'Why does the build never succeed?');
    rejects('Is the feature available?', 'Is the feature not available?');
  });

  it('passes when both sides are negated, however worded', () => {
    passes("Why doesn't my script run?", 'Why does my script not run?');
    passes('Can I not pay?', "Can't I pay?");
    passes('Is it true that the API is not only fast but cheap?', 'Is the API fast and cheap?');
  });
});

describe('DefaultHitGuard: names, identifiers, quotes', () => {
  it('rejects different proper nouns', () => {
    expect(rejects('How do I install Python on Windows?', 'How do I install Python on Linux?')).toMatch(/^names differ: windows vs linux/);
    rejects('What is the capital of France?', 'What is the capital of Germany?');
    rejects('Does the plan include AWS support?', 'Does the plan include GCP support?');
  });

  it('does not take sentence-initial capitals for names, and compares sets (reordering is fine)', () => {
    passes('Python on Windows: how do I install it?', 'How do I install Python on Windows?');
    passes('Windows users: how to install python', 'How do I install Python on Windows?');
    passes('Tell me about Paris. Where should I eat?', 'Where should I eat in Paris?');
    passes('Show me the weather', 'What is the weather?');
  });

  it('rejects different code identifiers and quoted strings', () => {
    rejects('What does `load_dataset()` return?', 'What does `load_from_disk()` return?');
    rejects('How do I use useEffect?', 'How do I use useMemo?');
    rejects('What does torch.nn.Linear do?', 'What does torch.nn.Conv2d do?');
    expect(rejects('What does "hello world" mean?', 'What does "goodbye world" mean?')).toMatch(/^quoted text differs/);
  });

  it('passes identifiers written the same way, with or without quotes', () => {
    passes('What does `load_dataset()` return?', 'What is returned by load_dataset()?');
    passes('What does the "max_tokens" option do?', 'What is max_tokens for?');
  });

  it('handles abbreviations and titles', () => {
    passes('What was the GDP of the U.S. in 2020?', 'What was the US GDP in 2020?');
    rejects('Who is Mr. Smith?', 'Who is Mr. Jones?');
  });

  it('does not take e.g. or a/b for identifiers', () => {
    passes('Which formats, e.g. CSV, are supported?', 'Which formats are supported, like CSV?');
    passes('Can I pass a list/dictionary of files?', 'Can I pass a list or dictionary of files?');
  });
});

describe('DefaultHitGuard: opposites', () => {
  it('rejects a word against its opposite', () => {
    expect(rejects('How do I enable dark mode?', 'How do I disable dark mode?')).toBe('opposite words: enable vs disable');
    rejects('Why did the price increase?', 'Why did the price decrease?');
    rejects('How do I upload files?', 'How do I download files?');
    rejects('What should I eat before running?', 'What should I eat after running?');
  });

  it('passes when both words appear on both sides', () => {
    passes('Should I eat before or after running?', 'Is it better to eat after or before a run?');
  });
});

describe('DefaultHitGuard: substitutions (opt-in)', () => {
  const strict = createHitGuard({ substitutions: true });

  it('is off by default', () => {
    passes('What is the time complexity of quicksort?', 'What is the space complexity of quicksort?');
  });

  it('rejects a content word replaced by another in a short text', () => {
    const v = strict.check('What is the time complexity of quicksort?', 'What is the space complexity of quicksort?');
    expect(v).toEqual({ ok: false, reason: 'different words: time vs space' });
    expect(strict.check('Write a haiku about autumn', 'Write a haiku about spring').ok).toBe(false);
  });

  it('passes inflections, added words and long texts', () => {
    expect(strict.check('How do I create a table?', 'How can I go about creating tables?')).toEqual({ ok: true });
    expect(strict.check('What is the capital of Australia?', 'Which city is the capital of Australia?')).toEqual({ ok: true });
    expect(
      strict.check(
        'What are the main differences between the eager and lazy processing modes of this dataset library?',
        'What are the main differences between the eager and lazy execution modes of this dataset library?',
      ),
    ).toEqual({ ok: true });
  });
});

describe('DefaultHitGuard: general', () => {
  it('passes texts with no numbers, names or negations (the threshold decides)', () => {
    passes('how do i make pancakes', 'what is a good pancake recipe');
    passes('', '');
    passes('🚀', '🔥');
    passes('如何重置我的密码', '我的密码如何重置');
  });

  it('can switch checks off', () => {
    const noNumbers = createHitGuard({ numbers: false });
    expect(noNumbers.check('Orders over $100?', 'Orders over $1000?')).toEqual({ ok: true });
    const noNegations = createHitGuard({ negations: false });
    expect(noNegations.check('Can I cancel?', "Can't I cancel?")).toEqual({ ok: true });
    const noNames = createHitGuard({ names: false });
    expect(noNames.check('Python on Windows', 'Python on Linux')).toEqual({ ok: true });
    const noOpposites = createHitGuard({ opposites: false });
    expect(noOpposites.check('enable dark mode', 'disable dark mode')).toEqual({ ok: true });
    const none = createHitGuard({ numbers: false, negations: false, names: false, opposites: false, substitutions: false });
    expect(none.check('Orders over $100 in France', "Orders not over $1000 in Spain")).toEqual({ ok: true });
  });

  it('is symmetric in its verdicts', () => {
    const pairs: Array<[string, string]> = [
      ['Orders over $100?', 'Orders over $1000?'],
      ['Python on Windows', 'Python on Linux'],
      ['Can I cancel?', "Can't I cancel?"],
      ['How do I reset my password?', 'How can I reset my password?'],
    ];
    for (const [a, b] of pairs) expect(guard.check(a, b).ok).toBe(guard.check(b, a).ok);
  });
});
