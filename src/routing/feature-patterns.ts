/**
 * The regexes of the request features (src/routing/features.ts): code, a request for code, math,
 * a request for reasoning, a request for structure. Each is documented where it is defined; the
 * extractor runs them over a bounded window of the last user message.
 */

/*
 * How the regexes are written, for speed: V8's regex engine tries a match at every position of
 * the text, and the cost per position grows with the number of top-level alternatives unless
 * they share one leading `\b(?:...)` group of alternatives that each begin with a literal (the
 * engine then dispatches on the first characters). Written that way each regex below costs
 * 1-3 ns per character instead of 4-12 (measured on Node 20); so each is one `\b(?:...)` group of
 * keyword-led alternatives plus a few alternatives led by punctuation. No alternative starts
 * with `\w`, `\s` or `[a-z]` (that would make every position expensive); a condition on what
 * precedes a literal is a lookbehind placed after the literal.
 */

/** Any of `words` (regex fragments, each led by a literal), at a word start. */
const atWord = (...words: string[]) => String.raw`\b(?:${words.join('|')})`;
const any = (...alternatives: string[]) => alternatives.join('|');
/** `words` each followed by `tail`, as separate alternatives (an alternative led by a group is slow). */
const each = (words: string[], tail: string) => words.map((w) => w + tail).join('|');

/**
 * Code-like syntax, any one of:
 *  - definitions: `function f(...) {`, `def f(`, `fn f(`, `func f(`, `class X {`/`(`/`:`/`extends`,
 *    `const|let|var x =`, `public|private|protected|static T f(`, `impl X`, `struct X {`,
 *    `interface X {`;
 *  - `import x from '...'`, `from x import y` (line start), `require('...')`, `console.log`,
 *    `System.out`, `printf(`;
 *  - SQL: `SELECT *|DISTINCT|COUNT(|a, b ... FROM x`, `SELECT a FROM x WHERE`, `INSERT INTO`,
 *    `UPDATE x SET`, `DELETE FROM`, `CREATE TABLE|INDEX|VIEW`, `ALTER TABLE`, `JOIN x ON t.col`
 *    (not bare `select ... from`, `join ... on` or `group by`: those are common English);
 *  - stack traces and errors: `Traceback (most recent call last)`, `  at f (file:1:2)` (line
 *    start), `File "x", line N`, `TypeError:` / `FooException(` (a word ending in Error or
 *    Exception, not a bare `Error:`, which support messages use), `Exception in thread`,
 *    `panic:`, `segmentation fault`, `core dumped`;
 *  - shell: `$ cmd` (line start), `npm|pip|git|docker|kubectl|cargo|helm|terraform... <verb>`,
 *    `sudo x`, `#!/` (line start);
 *  - C preprocessor: `#include <`, `#define X`;
 *  - operators: `=>`, `) ->`, `::x`, `&&`, `||`, `!=`, `===`, `+=`, `++;`;
 *  - a brace block holding a `;` (`{ ... ; ... }` within 200 characters), a method call `x.y(...)`,
 *    `f();`;
 *  - markup: closing tags `</x>`, `<div`, `<span`, `<script`, `<svg`...
 * Any code fence (```) anywhere in the conversation also sets hasCode (checked while measuring).
 */
export const CODE_RE = new RegExp(
  any(
    atWord(
      String.raw`function\s*\w*\s*\([^)]{0,80}\)\s*\{`,
      String.raw`def\s+\w+\s*\(`,
      String.raw`fn\s+\w+\s*[(<]`,
      String.raw`func\s+(?:\(\w+ \*?\w+\)\s*)?\w+\s*\(`,
      String.raw`class\s+\w+\s*(?:[:{(]|extends|implements)`,
      each(['const', 'let', 'var'], String.raw`\s+\w+\s*[:=]`),
      each(['public', 'private', 'protected', 'static'], String.raw`\s+[\w<>\[\]]+\s+\w+\s*\(`),
      String.raw`impl\s+\w+`,
      String.raw`struct\s+\w+\s*\{`,
      String.raw`interface\s+\w+\s*\{`,
      String.raw`import\s+[\w{}*, ]+\s+from\s+['"]`,
      String.raw`require\(['"]`,
      String.raw`console\.log`,
      String.raw`system\.out`,
      String.raw`printf\(`,
      String.raw`select\s+(?:\*|distinct\b|count\(|[\w.]+\s*,\s*[\w.]+)[^;]{0,200}?\bfrom\s+\w`,
      String.raw`select\s+[\w.]+\s+from\s+\w+\s+where\b`,
      String.raw`insert\s+into\s+\w`,
      String.raw`update\s+\w+\s+set\s+\w`,
      String.raw`delete\s+from\s+\w`,
      String.raw`create\s+(?:unique\s+)?(?:table|index|view)\b`,
      String.raw`alter\s+table\b`,
      String.raw`join\s+\w+(?:\s+\w+)?\s+on\s+\w+\.\w+`,
      String.raw`traceback \(most recent call last\)`,
      String.raw`file "[^"\n]+", line \d+`,
      String.raw`exception in thread\b`,
      String.raw`panic:`,
      String.raw`segmentation fault`,
      String.raw`core dumped`,
      each(
        ['npm', 'npx', 'pip', 'pip3', 'git', 'docker', 'kubectl', 'cargo', 'yarn', 'pnpm', 'brew', 'apt-get', 'helm', 'terraform'],
        String.raw`\s+(?:install|run|commit|push|pull|build|apply|get|exec|add|rebase|merge|test|compose|logs|init|plan)\b`,
      ),
      String.raw`sudo\s+\w`,
    ),
    String.raw`^\s*(?:\$\s+[a-z]|from\s+[\w.]+\s+import\s+\w|at\s+\S+\s+\(?\S+:\d+:\d+|#!\/)`,
    String.raw`#(?:include\s*[<"]|define\s+\w)`,
    String.raw`(?:error|exception)(?<=\w\w(?:error|exception))[:(]`,
    String.raw`=>|\)\s*->|::\w|&&|\|\||!==?|===|\+=|\+\+\s*[;)]`,
    String.raw`\{[^{}]{0,200};`,
    String.raw`\.(?<=\w\.)[a-z_]\w*\([^)]{0,80}\)`,
    String.raw`\(\);`,
    String.raw`<(?:\/[a-z][\w-]*>|(?:div|span|script|html|template|svg|button|input)\b)`,
  ),
  'im',
);

/**
 * Asks for code without showing any: a verb of writing or changing code followed, in the same
 * sentence (within 60 characters), by a code artefact or a language ("write a Python function",
 * "implement Dijkstra's algorithm", "give me a bash one-liner", "fix this regex"), or "in
 * <language>" ("... in Go", "... in C++"). Sentence-bounded so that "write a cover letter. I know
 * SQL" is not code.
 */
const LANGS = String.raw`python|javascript|typescript|java|golang|rust|c\+\+|c#|kotlin|swift|ruby|php|scala|haskell|elixir|sql|bash|powershell`;
export const CODE_ASK_RE = new RegExp(
  atWord(
    each(
      ['write', 'implement', 'create', 'build', 'generate', 'code', 'make', 'fix', 'debug', 'refactor', 'convert', 'port', 'rewrite', 'give me'],
      String.raw`\b[^.?!\n]{0,60}?\b(?:function|method|class|script|program|query|regex(?:p|es)?|regular expression|unit tests?|test suite|tests|component|endpoint|dockerfile|makefile|one-liner|snippet|algorithm|parser|tokenizer|compiler|crawler|cli|library|module|cron expression|${LANGS})(?![\w+#])`,
    ),
    String.raw`in (?:${LANGS}|go)(?![\w+#])`,
  ),
  'i',
);

/**
 * Math:
 *  - LaTeX: `$$`, `\(`, `\[`, `\frac`, `\int`, `\sum`, `\sqrt`, `\lim`, `\partial`, `\mathbb`,
 *    Greek letters, `\begin{`...;
 *  - equations: `x^2`, `(a+b)^n`, `2^10` (a `^` after a one-letter name, a digit or `)`), `x**2`,
 *    `x²`, `3x + 1`,
 *    `f(x) =`, `dy/dx`, `P(X < Y)`, `∫ ∑ ∏ √ ∂ ≤ ≥ ≠ ∞ ∀ ∃ ∈`, Greek letters;
 *  - vocabulary: integral (not "integral part/role/component"), derivative, differentiate,
 *    eigenvalue/vector, matrix, determinant, theorem, lemma, proof/prove (not "proof of
 *    concept"), induction, probability, random variable, expected value, variance, standard
 *    deviation, named distributions (normal, binomial, Poisson...), Bayes, polynomial, logarithm,
 *    equation, inequality, combinatorics, permutations/combinations, modulo/modular arithmetic,
 *    prime number(s), converge(nce), geometric/power series, calculus, vector space, confidence
 *    interval, p-value; and the same in French, Spanish, German, Portuguese where they differ.
 * Plain arithmetic ("what is 15% of 80", "17 * 23") is not math here: a small model handles it.
 */
export const MATH_RE = new RegExp(
  any(
    String.raw`\b\d+[a-z]\s*[+\-]\s*\d`,
    atWord(
      String.raw`f\([a-z]\)\s*=`,
      String.raw`d[a-z]\/d[a-z]\b`,
      String.raw`p\([a-z][^)]{0,20}\)`,
      String.raw`integrals?\b(?!\s+(?:part|role|component))`,
      String.raw`derivative`,
      String.raw`differentiat`,
      String.raw`eigen(?:value|vector)`,
      String.raw`matri(?:x|ces)\b`,
      String.raw`determinant`,
      String.raw`theorem`,
      String.raw`lemma\b`,
      String.raw`proofs?\b(?! of concept)`,
      String.raw`prove\b`,
      String.raw`induction\b`,
      String.raw`probabilit`,
      String.raw`random variables?\b`,
      String.raw`expected value`,
      String.raw`variance\b`,
      String.raw`standard deviation`,
      each(['normal', 'binomial', 'poisson', 'probability', 'uniform', 'gaussian', 'exponential', 'geometric'], ' distribution'),
      String.raw`bayes`,
      String.raw`polynomial`,
      String.raw`logarithm`,
      String.raw`equations?\b`,
      String.raw`inequalit`,
      String.raw`combinatori`,
      String.raw`permutations?\b`,
      String.raw`combinations\b`,
      String.raw`modul(?:o|ar arithmetic)\b`,
      String.raw`prime numbers?\b`,
      String.raw`primes\b`,
      String.raw`converge`,
      String.raw`calculus\b`,
      String.raw`vector space`,
      String.raw`geometric series`,
      String.raw`power series`,
      String.raw`confidence interval`,
      String.raw`p-value`,
      // French, Spanish, German, Portuguese
      String.raw`probabilidad`,
      String.raw`probabilité`,
      String.raw`wahrscheinlichkeit`,
      String.raw`ecuaci[oó]n`,
      String.raw`gleichung`,
      String.raw`démontr`,
      String.raw`demostr`,
      String.raw`beweise`,
      String.raw`intégrale`,
      String.raw`ableitung`,
      String.raw`derivada`,
      String.raw`dérivée`,
      String.raw`teorema`,
      String.raw`théorème`,
      String.raw`satz des`,
    ),
    String.raw`équation`,
    String.raw`\$\$|\\(?:\(|\[|frac|int|iint|sum|prod|sqrt|lim|partial|mathbb|mathcal|alpha|beta|gamma|delta|epsilon|theta|lambda|mu|sigma|omega|infty|cdot|leq|geq|neq|binom|begin\{)`,
    String.raw`\^(?<=(?:\b[a-z]|\d|\))\s?\^)\s*[\d(a-z{]`,
    String.raw`\*\*(?<=[a-z0-9)]\*\*)\s*\d`,
    String.raw`[²³∫∑∏√∂≤≥≠∞∀∃∈αβγδεθλμπσφωΣΔ]`,
  ),
  'i',
);

/**
 * Asks for reasoning or an explanation: the request wants an argued, multi-step answer rather
 * than a fact or a rewrite. "step by step", "prove", "proof", "derive", "explain", "why",
 * "describe how", "difference(s) between", "how does/do/can/should/would I/we/it/one",
 * "how does X work", "what are the main causes/reasons/differences/benefits/risks/implications",
 * "detailed", "comprehensive", "thorough", "critically", "analyze/analysis", "compare",
 * "comparison", "contrast", "trade-offs", "pros and cons", "design a/an/the/our/my",
 * "architecture", "root cause", "debug", "diagnose", "figure out", "walk me through",
 * "think through/carefully", "reason about", "evaluate", "critique", "justify", "optimize",
 * "refactor", "review this code/PR/design...", "code review", "what would happen if",
 * "show your work", "implications", "time/space complexity", "big-O", "edge cases",
 * "in depth/detail", "rigorous", "strategy", "plan out/for", "scalable/scaling/at scale";
 * and the commonest French, Spanish, German, Portuguese forms.
 */
export const REASONING_RE = new RegExp(
  any(
    atWord(
      String.raw`step[- ]by[- ]step\b`,
      String.raw`prove\b`,
      String.raw`proof\b`,
      String.raw`derive\b`,
      String.raw`derivation\b`,
      String.raw`explain\b`,
      String.raw`why\b`,
      String.raw`describe how\b`,
      String.raw`differences? between\b`,
      String.raw`how (?:does|do|can|should|would) (?:i|we|it|one)\b`,
      String.raw`how (?:does|do) \w+(?: \w+)? work\b`,
      String.raw`what (?:are|were) the (?:main |key )?(?:causes|reasons|differences|benefits|risks|implications)\b`,
      each(['detailed', 'comprehensive', 'thorough', 'critically'], String.raw`\b`),
      String.raw`analy[sz](?:e|is|ing)\b`,
      String.raw`compare\b`,
      String.raw`comparison\b`,
      String.raw`contrast\b`,
      String.raw`trade-?offs?\b`,
      String.raw`pros and cons\b`,
      String.raw`design (?:a|an|the|our|my)\b`,
      String.raw`architect(?:ure)?\b`,
      String.raw`root cause\b`,
      String.raw`debug`,
      String.raw`diagnos`,
      String.raw`figure out\b`,
      String.raw`walk me through\b`,
      String.raw`think (?:through|carefully)\b`,
      String.raw`reason about\b`,
      String.raw`evaluate\b`,
      String.raw`critique\b`,
      String.raw`justify\b`,
      String.raw`optimi[sz]`,
      String.raw`refactor`,
      String.raw`review (?:this|my|our|the) (?:code|pull request|pr|diff|design|architecture|changes|contract|proposal|plan)\b`,
      String.raw`code review\b`,
      String.raw`what would happen if\b`,
      String.raw`show (?:all )?(?:your|the) work\b`,
      String.raw`implications?\b`,
      each(['time', 'space'], String.raw` complexity\b`),
      String.raw`big-?o\b`,
      String.raw`edge cases\b`,
      String.raw`in (?:depth|detail)\b`,
      String.raw`rigorous`,
      String.raw`strateg(?:y|ies|ic)\b`,
      String.raw`plan (?:out|for)\b`,
      String.raw`scal(?:able|ability|ing)\b`,
      String.raw`at scale\b`,
      // French, Spanish, German, Portuguese
      String.raw`paso a paso`,
      String.raw`schritt für schritt`,
      String.raw`passo a passo`,
      String.raw`explique(?:z)? pourquoi`,
      String.raw`explica por qu[eé]`,
      String.raw`erkläre,? warum`,
      String.raw`analy[sz]ez\b`,
      String.raw`analiza`,
      String.raw`analysiere`,
      String.raw`compar[ae]z?\b`,
      String.raw`vergleiche`,
      String.raw`démontre`,
      String.raw`demuestra`,
      String.raw`beweise`,
      String.raw`conçois`,
      String.raw`diseña`,
      String.raw`entwirf`,
      String.raw`entwerfe`,
    ),
    String.raw`étape par étape`,
  ),
  'i',
);

/**
 * Asks for structure: JSON, YAML, CSV, XML, a table, a schema, columns/fields, key-value, a
 * spreadsheet, a numbered or bullet list, "list (of) N", "top N", "N bullet points / items /
 * examples / ideas / names / questions / steps / options / reasons / tips / titles",
 * "format (it/this/them) as", an outline; and the same in French, Spanish, German, Portuguese.
 * (response_format json is added separately.)
 */
export const STRUCTURE_RE = new RegExp(
  atWord(
    String.raw`json\b`,
    String.raw`yaml\b`,
    String.raw`csv\b`,
    String.raw`xml\b`,
    String.raw`tables?\b`,
    String.raw`schema\b`,
    String.raw`columns?\b`,
    String.raw`fields\b`,
    String.raw`key[- ]value\b`,
    String.raw`spreadsheet\b`,
    each(['bullet', 'bulleted', 'numbered'], String.raw`(?: list| points?)?\b`),
    String.raw`list (?:of )?\d+\b`,
    String.raw`top \d+\b`,
    String.raw`\d+ (?:bullet|items?|examples?|ideas?|names?|questions?|steps?|points?|options?|reasons?|tips?|titles?)\b`,
    String.raw`format (?:it |this |them )?as\b`,
    String.raw`outline\b`,
    String.raw`tabla\b`,
    String.raw`tableau\b`,
    String.raw`tabelle\b`,
    String.raw`tabela\b`,
    String.raw`liste de \d+`,
    String.raw`lista de \d+`,
    String.raw`esquema\b`,
  ),
  'i',
);
