/**
 * The features of a chat request that the complexity classifier (classifier.ts) and the route's
 * rules (rules.ts) look at. On the request path before every routed call, so it must cost a few
 * microseconds: no tokenizer, no allocation beyond a few substrings, a handful of precompiled
 * regexes run over a bounded window of the text.
 *
 * What is scanned:
 *  - Every message once, for its length (string content, or the text parts of an array content;
 *    an `image_url` / `input_image` part sets `hasImages`; tool-call arguments count as text) and
 *    for a code fence (```), which anywhere in the conversation means code is in play.
 *  - The last user message (what is being asked now), with the regexes below. Long messages are
 *    scanned in a window: the first {@link HEAD_CHARS} and the last {@link TAIL_CHARS}
 *    characters (the ask is almost always at the start or the end of a long paste; the middle is
 *    the pasted material), so the cost is bounded whatever the size of the prompt.
 *  - The first system message's first {@link SYSTEM_CHARS} characters, for structure only
 *    ("answer in JSON" is often in the system prompt; "think step by step" in a system prompt
 *    applies to every request and says nothing about this one).
 *
 * The heuristics are deliberately broad, English-first, with the commonest French, Spanish,
 * German and Portuguese forms; each regex is documented where it is defined. They over-fire more
 * often than they miss: the classifier weighs them, and a false "hasCode" on a one-line question
 * costs at most one tier.
 */
import type { ChatCompletionRequest, ChatMessage } from '../providers/types.js';
import type { FeatureExtractor, RequestFeatures } from './types.js';

/** The part of a long last user message scanned from its start. */
export const HEAD_CHARS = 4000;
/** ... and from its end. */
export const TAIL_CHARS = 2000;
/** The part of the system prompt scanned (for structure). */
export const SYSTEM_CHARS = 2000;

/**
 * Code-like syntax, any one of:
 *  - C/C++ preprocessor (`#include <`, `#define X`), shebangs;
 *  - definitions: `function f(...) {`, `def f(`, `fn f(`, `func f(`, `class X {`/`(`/`:`,
 *    `const|let|var x =`, `public|private|static ... (`, `impl X`, `struct X {`;
 *  - arrows `=>` / `->` after an identifier or `)`, `::`, `&&`, `||`, `!=`, `===`, `+=`, `i++;`;
 *  - a brace block holding a `;` (`{ ... ; ... }` within 200 characters), `x.y(` method calls,
 *    `f();` calls, `import x from '...'`, `from x import y`, `require('...')`, `console.log`,
 *    `System.out`, `printf(`;
 *  - SQL: `SELECT *|DISTINCT|COUNT(|a, b ... FROM x`, `SELECT a FROM x WHERE`, `INSERT INTO`,
 *    `UPDATE x SET`, `DELETE FROM`, `CREATE TABLE|INDEX|VIEW`, `ALTER TABLE`, `JOIN x ON t.col`
 *    (not bare `select ... from`, `join ... on` or `group by`: those are common English);
 *  - stack traces and errors: `Traceback (most recent call last)`, `  at f (file:1:2)`,
 *    `File "x", line N`, `TypeError:` / `FooException(`, `Exception in thread`, `panic:`,
 *    `segmentation fault` (not a bare `Error:`, which support messages use);
 *  - shell: `$ cmd`, `npm|pip|git|docker|kubectl|cargo|helm|terraform... <verb>`, `sudo `;
 *  - markup: closing HTML/XML tags `</x>`, `<div`, `<script`, `<svg`...
 * Any code fence (```) anywhere in the conversation also sets hasCode (checked while measuring).
 */
const CODE_RE = new RegExp(
  [
    String.raw`#include\s*[<"]|#define\s+\w|^#!\/`,
    String.raw`\bfunction\s*\w*\s*\([^)]{0,80}\)\s*\{|\bdef\s+\w+\s*\(|\bfn\s+\w+\s*[(<]|\bfunc\s+(?:\(\w+ \*?\w+\)\s*)?\w+\s*\(`,
    String.raw`\bclass\s+\w+\s*(?:[:{(]|extends|implements)|\b(?:const|let|var)\s+\w+\s*[:=]|\b(?:public|private|protected|static)\s+[\w<>\[\]]+\s+\w+\s*\(`,
    String.raw`\bimpl\s+\w+|\bstruct\s+\w+\s*\{|\binterface\s+\w+\s*\{`,
    String.raw`[\w)\]]\s*=>|\w\)\s*->|\w::\w|&&|\|\||!==?|===|\+=|\w\+\+\s*[;)]`,
    String.raw`\{[^{}]{0,200};|\b[a-zA-Z_]\w*\.[a-zA-Z_]\w*\([^)]{0,80}\)|\w\(\);`,
    String.raw`\bimport\s+[\w{}*, ]+\s+from\s+['"]|^\s*from\s+[\w.]+\s+import\s+\w|\brequire\(['"]|console\.log|System\.out|\bprintf\(`,
    String.raw`\bselect\s+(?:\*|distinct\b|count\(|[\w.]+\s*,\s*[\w.]+)[^;]{0,200}?\bfrom\s+\w|\bselect\s+[\w.]+\s+from\s+\w+\s+where\b|\binsert\s+into\s+\w|\bupdate\s+\w+\s+set\s+\w|\bdelete\s+from\s+\w|\bcreate\s+(?:unique\s+)?(?:table|index|view)\b|\balter\s+table\b|\bjoin\s+\w+(?:\s+\w+)?\s+on\s+\w+\.\w+`,
    String.raw`Traceback \(most recent call last\)|^\s+at\s+\S+\s+\(?\S+:\d+:\d+\)?|File "[^"]+", line \d+|\b[A-Z]\w+(?:Error|Exception)\b[:(]|\bException in thread\b|\bpanic:|segmentation fault|core dumped`,
    String.raw`^\s*\$\s+[a-z]|\b(?:npm|npx|pip|pip3|git|docker|kubectl|cargo|yarn|pnpm|brew|apt-get|helm|terraform)\s+(?:install|run|commit|push|pull|build|apply|get|exec|add|rebase|merge|test|compose|logs|init|plan)\b|\bsudo\s+\w`,
    String.raw`<\/[a-zA-Z][\w-]*>|<(?:div|span|script|html|template|svg|button|input)\b`,
  ].join('|'),
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
const CODE_ASK_RE = new RegExp(
  [
    String.raw`\b(?:write|implement|create|build|generate|code|make|fix|debug|refactor|convert|port|rewrite|give me)\b[^.?!\n]{0,60}?\b(?:function|method|class|script|program|query|regex(?:p|es)?|regular expression|unit tests?|test suite|tests|component|endpoint|dockerfile|makefile|one-liner|snippet|algorithm|parser|tokenizer|compiler|crawler|cli|library|module|cron expression|${LANGS})(?![\w+#])`,
    String.raw`\bin (?:${LANGS}|go)(?![\w+#])`,
  ].join('|'),
  'i',
);

/**
 * Math:
 *  - LaTeX: `$$`, `\(`, `\[`, `\frac`, `\int`, `\sum`, `\sqrt`, `\lim`, `\partial`, `\mathbb`,
 *    Greek letters, `\begin{`...;
 *  - equations with a variable: `x^2`, `x²`, `3x + 1 =`, `f(x) =`, `dy/dx`, `∫ ∑ √ ∂ ≤ ≥ ≠ ∞`;
 *  - vocabulary: integral (not "integral part"), derivative, differentiate, eigenvalue/vector, matrix, determinant,
 *    theorem, lemma, proof/prove (not "proof of concept"), induction, probability, expected value, variance, standard
 *    deviation, named distributions (normal, binomial, Poisson...), Bayes, polynomial, logarithm, equation, inequality, combinatorics,
 *    permutations/combinations, modulo/modular arithmetic, prime number(s), converge(nce),
 *    geometric/power series, calculus, vector space, confidence interval, p-value; and the same
 *    in French, Spanish, German, Portuguese where they differ.
 * Plain arithmetic ("what is 15% of 80", "17 * 23") is not math here: a small model handles it.
 */
const MATH_RE = new RegExp(
  [
    String.raw`\$\$|\\\(|\\\[|\\(?:frac|int|iint|sum|prod|sqrt|lim|partial|mathbb|mathcal|alpha|beta|gamma|delta|epsilon|theta|lambda|mu|sigma|omega|infty|cdot|leq|geq|neq|binom|begin\{)`,
    String.raw`\b[a-z]\s*(?:\^|\*\*)\s*[\d(a-z]|[a-z)][²³]|\b\d+[a-z]\s*[+\-]\s*\d|\bf\([a-z]\)\s*=|\bd[a-z]\/d[a-z]\b|\bP\([A-Z][^)]{0,20}\)|[∫∑∏√∂≤≥≠∞∀∃∈αβγδεθλμπσφωΣΔ]`,
    String.raw`\bintegrals?\b(?!\s+(?:part|role|component))|\bderivative|\bdifferentiat|\beigen(?:value|vector)|\bmatri(?:x|ces)\b|\bdeterminant|\btheorem|\blemma\b|\bproofs?\b(?! of concept)|\bprove\b|\binduction\b`,
    String.raw`\bprobabilit|\brandom variables?\b|\bexpected value|\bvariance\b|\bstandard deviation|\b(?:normal|binomial|poisson|probability|uniform|gaussian|exponential|geometric) distribution|\bbayes|\bpolynomial|\blogarithm|\bequations?\b|\binequalit|\bcombinatori|\bpermutations?\b|\bcombinations\b|\bmodul(?:o|ar arithmetic)\b|\bprime numbers?\b|\bprimes\b|\bconverge|\bcalculus\b|\bvector space|\bgeometric series|\bpower series|\bconfidence interval|\bp-value`,
    String.raw`\bprobabilidad|\bprobabilité|\bwahrscheinlichkeit|\becuaci[oó]n|équation|\bgleichung|\bdémontr|\bdemostr|\bbeweise|\bintégrale|\bableitung|\bderivada|\bdérivée|\bteorema|\bthéorème|\bsatz des`,
  ].join('|'),
  'i',
);

/**
 * Asks for reasoning: the request wants an argued, multi-step answer rather than a fact or a
 * rewrite. "step by step", "prove", "derive", "explain why", "why does/do/is/would", "analyze",
 * "compare", "contrast", "trade-offs", "pros and cons", "design a/an/the", "architecture",
 * "root cause", "debug", "diagnose", "figure out", "walk me through", "think through",
 * "reason about", "evaluate", "critique", "justify", "optimi[sz]e", "refactor", "review",
 * "what would happen if", "implications", "time/space complexity", "edge cases",
 * "in depth"/"in detail", "rigorous", "strategy", "plan out/for", "scalable/scaling/at scale",
 * and their French, Spanish, German, Portuguese forms.
 */
const REASONING_RE = new RegExp(
  [
    String.raw`\bstep[- ]by[- ]step\b|\bprove\b|\bproof\b|\bderive\b|\bderivation\b|\bexplain\b|\bwhy\b|\bdescribe how\b|\bdifferences? between\b|\bhow (?:does|do|can|should|would) (?:i|we|it|one)\b|\bhow (?:does|do) \w+(?: \w+)? work\b`,
    String.raw`\bwhat (?:are|were) the (?:main |key )?(?:causes|reasons|differences|benefits|risks|implications)\b|\b(?:detailed|comprehensive|thorough|critically)\b`,
    String.raw`\banaly[sz](?:e|is|ing)\b|\bcompare\b|\bcomparison\b|\bcontrast\b|\btrade-?offs?\b|\bpros and cons\b|\bdesign (?:a|an|the|our|my)\b|\barchitect(?:ure)?\b`,
    String.raw`\broot cause\b|\bdebug|\bdiagnos|\bfigure out\b|\bwalk me through\b|\bthink (?:through|carefully)\b|\breason about\b|\bevaluate\b|\bcritique\b|\bjustify\b`,
    String.raw`\boptimi[sz]|\brefactor|\breview (?:this|my|our|the) (?:code|pull request|pr|diff|design|architecture|changes|contract|proposal|plan)\b|\bcode review\b|\bwhat would happen if\b|\bshow (?:all )?(?:your|the) work\b|\bimplications?\b|\b(?:time|space) complexity\b|\bbig-?o\b|\bedge cases\b|\bin (?:depth|detail)\b|\brigorous|\bstrateg(?:y|ies|ic)\b|\bplan (?:out|for)\b|\bscal(?:able|ability|ing)\b|\bat scale\b`,
    String.raw`\bpaso a paso|étape par étape|\bschritt für schritt|\bpasso a passo|\bexplique(?:z)? pourquoi|\bexplica por qu[eé]|\berkläre,? warum|\banaly[sz]ez\b|\banaliza|\banalysiere|\bcompar[ae]z?\b|\bvergleiche|\bdémontre|\bdemuestra|\bbeweise|\bconçois|\bdiseña|\bentwirf|\bentwerfe`,
  ].join('|'),
  'i',
);

/**
 * Asks for structure: JSON, YAML, CSV, XML, a table, a schema, columns/fields, a numbered or
 * bullet list, "list of N", "top N", "N bullet points / items / examples / ideas / names /
 * questions / steps", "key-value", "format (it) as", an outline; and the same in French,
 * Spanish, German, Portuguese. (response_format json is added separately.)
 */
const STRUCTURE_RE = new RegExp(
  [
    String.raw`\bjson\b|\byaml\b|\bcsv\b|\bxml\b|\btables?\b|\bschema\b|\bcolumns?\b|\bfields\b|\bkey[- ]value\b|\bspreadsheet\b`,
    String.raw`\b(?:bullet(?:ed)?|numbered)(?: list| points?)?\b|\blist (?:of )?\d+\b|\btop \d+\b|\b\d+ (?:bullet|items?|examples?|ideas?|names?|questions?|steps?|points?|options?|reasons?|tips?|titles?)\b|\bformat (?:it |this |them )?as\b|\boutline\b`,
    String.raw`\btabla\b|\btableau\b|\btabelle\b|\btabela\b|\bliste de \d+|\blista de \d+|\besquema\b`,
  ].join('|'),
  'i',
);

const FENCE = '```';

/** Whether `re` matches `text`, scanning only its head and tail when it is long. */
function scan(re: RegExp, text: string): boolean {
  if (text.length <= HEAD_CHARS + TAIL_CHARS) return re.test(text);
  return re.test(text.slice(0, HEAD_CHARS)) || re.test(text.slice(text.length - TAIL_CHARS));
}

/** A content part that is an image (OpenAI `image_url`, Responses-style `input_image`, `image`). */
function isImagePart(type: unknown): boolean {
  return type === 'image_url' || type === 'input_image' || type === 'image';
}

/** The text of an array content (text parts only, joined by newlines). */
function partsText(parts: readonly unknown[]): string {
  let text = '';
  for (const p of parts) {
    const part = p as { type?: unknown; text?: unknown };
    if (part && part.type === 'text' && typeof part.text === 'string') text = text === '' ? part.text : `${text}\n${part.text}`;
  }
  return text;
}

function maxTokensOf(body: ChatCompletionRequest): number | null {
  const a = body.max_completion_tokens;
  if (typeof a === 'number' && Number.isFinite(a)) return a;
  const b = body.max_tokens;
  if (typeof b === 'number' && Number.isFinite(b)) return b;
  return null;
}

/** Computes the {@link RequestFeatures} of a chat request (a few µs; no I/O, no tokenizer). */
export const extractFeatures: FeatureExtractor = (body: ChatCompletionRequest): RequestFeatures => {
  const messages: readonly ChatMessage[] = Array.isArray(body.messages) ? body.messages : [];
  let chars = 0;
  let userTurns = 0;
  let hasSystem = false;
  let fence = false;
  let hasImages = false;
  let lastUser = -1;
  let systemIdx = -1;

  for (let i = 0; i < messages.length; i++) {
    const m = messages[i] as ChatMessage;
    const role = m.role;
    if (role === 'user') {
      userTurns++;
      lastUser = i;
    } else if (role === 'system' || role === 'developer') {
      hasSystem = true;
      if (systemIdx === -1) systemIdx = i;
    }
    const content = m.content;
    if (typeof content === 'string') {
      chars += content.length;
      if (!fence && content.includes(FENCE)) fence = true;
    } else if (Array.isArray(content)) {
      for (const p of content) {
        const part = p as { type?: unknown; text?: unknown };
        if (!part) continue;
        if (part.type === 'text' && typeof part.text === 'string') {
          chars += part.text.length;
          if (!fence && part.text.includes(FENCE)) fence = true;
        } else if (isImagePart(part.type)) hasImages = true;
      }
    }
    const calls = m.tool_calls;
    if (Array.isArray(calls)) {
      for (const c of calls) {
        const f = c?.function;
        if (f) chars += (typeof f.name === 'string' ? f.name.length : 0) + (typeof f.arguments === 'string' ? f.arguments.length : 0);
      }
    }
  }

  let ask = '';
  if (lastUser !== -1) {
    const c = (messages[lastUser] as ChatMessage).content;
    ask = typeof c === 'string' ? c : Array.isArray(c) ? partsText(c) : '';
  }

  const rf = body.response_format;
  const jsonMode = rf != null && (rf.type === 'json_object' || rf.type === 'json_schema');

  let asksStructure = jsonMode || (ask !== '' && scan(STRUCTURE_RE, ask));
  if (!asksStructure && systemIdx !== -1) {
    const c = (messages[systemIdx] as ChatMessage).content;
    const sys = typeof c === 'string' ? c : Array.isArray(c) ? partsText(c) : '';
    if (sys !== '') asksStructure = STRUCTURE_RE.test(sys.length > SYSTEM_CHARS ? sys.slice(0, SYSTEM_CHARS) : sys);
  }

  const tools = body.tools;
  const functions = (body as { functions?: unknown }).functions;

  return {
    promptChars: chars,
    promptTokens: Math.ceil(chars / 4),
    lastUserChars: ask.length,
    messages: messages.length,
    userTurns,
    hasSystem,
    hasCode: fence || (ask !== '' && (scan(CODE_RE, ask) || scan(CODE_ASK_RE, ask))),
    hasMath: ask !== '' && scan(MATH_RE, ask),
    asksReasoning: ask !== '' && scan(REASONING_RE, ask),
    asksStructure,
    hasTools: (Array.isArray(tools) && tools.length > 0) || (Array.isArray(functions) && functions.length > 0),
    jsonMode,
    maxTokens: maxTokensOf(body),
    hasImages,
  };
};
