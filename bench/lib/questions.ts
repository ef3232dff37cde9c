/**
 * Generated questions for semantic-cache benchmarks: varied, realistic-ish chat questions built
 * from templates and word lists, deterministic, and unique by construction (no set of the
 * questions is kept in memory, so a memory measurement of a filled cache is not inflated by it).
 *
 * Question i belongs to a family (how-to, difference, troubleshooting, writing, explanation; fixed
 * shares), and its slots (verb, object, product, version...) are the mixed-radix digits of a
 * scrambled index within the family: (j * A + B) mod M, A prime and larger than M, is a bijection
 * of 0..M-1, so two questions of a family never share all their slots. Each family has several
 * phrasings; a stored question uses one (chosen by a seeded PRNG), its paraphrase another.
 *
 * Query kinds, for lookups against a cache holding questions 0..n-1:
 *   exact       a stored question, verbatim (must find itself: similarity ~1)
 *   paraphrase  a stored question's slots in another phrasing, sometimes with a trailing
 *               politeness or without the question mark (should find it)
 *   near-miss   a stored how-to question with another version number (the guard must refuse
 *               it; costs a store read and a guard check per candidate above the threshold)
 *   unrelated   questions of families never stored (translation, trivia, conversions)
 */

import { prng } from './random.js';

const pick = <T>(rnd: () => number, list: readonly T[]): T => list[Math.floor(rnd() * list.length)] as T;

const words = (s: string): string[] => s.trim().split(/\s*\|\s*/);

const VERBS = words(
  'reset | export | import | back up | restore | rename | delete | share | archive | encrypt | sync | migrate | ' +
    'duplicate | merge | split | lock | unlock | recover | schedule | customize | translate | compress | audit | publish | ' +
    'unpublish | tag | filter | sort | print | convert | clone | transfer | pin | mute | validate | debug | monitor | ' +
    'throttle | version | rotate',
);
const OBJECTS = words(
  'password | invoice | calendar | mailbox | workspace | project board | API token | user account | billing address | ' +
    'shared folder | notification settings | dashboard | spreadsheet | contact list | team channel | webhook | ' +
    'payment method | subscription plan | audit log | backup file | SSH key | custom domain | email template | ' +
    'database table | storage bucket | pipeline | deployment | feature flag | support ticket | product catalog | ' +
    'shopping cart | order history | loyalty points | tax settings | time zone | profile picture | two-factor device | ' +
    'recovery codes | data export | report schedule | widget | chart | form | survey | landing page | blog post | ' +
    'image gallery | video library | playlist | font settings | keyboard shortcuts | printer queue | VPN profile | ' +
    'firewall rule | DNS record | TLS certificate | cron job | container image | build cache | log retention',
);
const PRODUCTS = words(
  'Acme | Zento | Nimbus | Orbix | Quilla | Vantage | Helio | Brightdesk | Kappa | Lumen | Monza | Northwind | ' +
    'Pylon | Redwood | Sparrow | Tessera | Umbra | Vesta | Willow | Xylo | Yarrow | Zephyr | Cobalt | Delta | ' +
    'Ember | Fjord | Granite | Harbor | Iris | Juniper',
);
const CONCEPTS = words(
  'a list | a tuple | a set | a dictionary | an array | a linked list | a hash map | a tree map | a stack | a queue | ' +
    'a heap | a trie | a class | an interface | an abstract class | a struct | an enum | a union type | a generic | ' +
    'a closure | a lambda | a coroutine | a thread | a process | a future | a promise | a callback | an iterator | ' +
    'a generator | a decorator | a macro | a module | a package | a namespace | a pointer | a reference | ' +
    'a mutex | a semaphore | a channel | an actor | a static method | an instance method | a constructor | ' +
    'a destructor | a getter | a setter | a property | a field | a constant | a variable | a global | ' +
    'shallow copy | deep copy | pass by value | pass by reference | composition | inheritance | overloading | ' +
    'overriding | recursion | iteration | mutability | immutability | early binding | late binding | ' +
    'static typing | dynamic typing | garbage collection | reference counting | a compiler | an interpreter | ' +
    'a linter | a formatter | a unit test | an integration test | a mock | a stub | a fixture | an assertion | ' +
    'an exception | an error code',
);
const LANGUAGES = words(
  'Python | JavaScript | TypeScript | Java | Kotlin | Swift | Go | Rust | C++ | C# | Ruby | PHP | Scala | Elixir | ' +
    'Haskell | Dart | Lua | Julia | Perl | Clojure',
);
const THINGS = words(
  'laptop | phone | router | printer | smart TV | game console | tablet | smartwatch | dishwasher | washing machine | ' +
    'car battery | electric bike | air purifier | thermostat | dashcam | bluetooth speaker | headphones | ' +
    'external drive | graphics card | monitor | keyboard | mouse | webcam | microphone | e-reader | drone | ' +
    'espresso machine | robot vacuum | space heater | heat pump | solar inverter | baby monitor | doorbell camera | ' +
    'garage opener | smart lock | fitness tracker | sewing machine | 3D printer | projector | soundbar | ' +
    'car radio | oven | fridge | microwave | freezer | dryer | water heater | boiler | sump pump | pool pump',
);
const SYMPTOMS = words(
  'keep restarting | overheat | drain the battery | lose the connection | make a clicking noise | freeze | ' +
    'run slowly | show a blank screen | smell like burning | beep every minute | stop charging | turn off by itself | ' +
    'leak water | vibrate loudly | flicker | show an error light | refuse to pair | get stuck on the logo | ' +
    'reset its settings | lag badly | disconnect randomly | stop responding | blink red | get very loud | ' +
    'show the wrong time | crash | heat up quickly | power cycle | lose its memory | display garbled text',
);
const EVENTS = words(
  'the latest update | a power outage | a firmware upgrade | moving house | a factory reset | a thunderstorm | ' +
    'replacing the battery | changing the settings | a long trip | cleaning it | installing an app | a week of use | ' +
    'switching providers | a drop | being left outside | the warranty repair | adding a new device | ' +
    'changing the password | a heat wave | resetting the network | unplugging it overnight | a software rollback | ' +
    'a holiday | changing the fuse | a cold night',
);
const FORMS = words('poem | haiku | short story | limerick | song | speech | toast | blog post | newsletter | cover letter | product description | tweet thread | riddle | fable | sonnet');
const TOPICS = words(
  'autumn leaves | the ocean | a lost cat | city traffic | first love | a rainy Monday | the moon landing | coffee | ' +
    'friendship | a broken umbrella | the last day of school | gardening | a mountain hike | winter mornings | ' +
    'a robot learning to cook | a lighthouse keeper | time travel | an old bookshop | jazz | the night sky | ' +
    'a village festival | a dragon who is afraid of fire | climate change | remote work | a marathon | ' +
    'an abandoned train station | the smell of bread | learning to swim | a chess match | a power cut | ' +
    'volunteering | moving abroad | a grandmother\'s recipe | a failed experiment | the first snow | bees | ' +
    'a thunderstorm | a job interview | a startup launch | a football final | a paper airplane | a desert road | ' +
    'a ghost in the office | the stock market | a birthday surprise | a haunted lighthouse | a long flight | ' +
    'a street musician | the northern lights | a forgotten password | recycling | a vintage car | a busy kitchen | ' +
    'a tiny apartment | an empty stadium | a fishing trip | a rooftop garden | a science fair | a wedding | ' +
    'a retirement party | a new puppy | a sleepless night | an old photograph | a treasure map | a river cruise | ' +
    'a snowed-in cabin | a music festival | a library at midnight | an island vacation | a spelling bee | ' +
    'a volcano | a city at dawn | a lost wallet | a school reunion | a farmers market',
);
const AUDIENCES = words(
  'children | teenagers | new employees | retirees | engineers | nurses | teachers | investors | beginners | ' +
    'students | managers | customers | volunteers | parents | scientists | artists | athletes | tourists | ' +
    'lawyers | designers | farmers | writers | musicians | chefs | pilots',
);
const EXPLAIN = words(
  'photosynthesis | inflation | compound interest | black holes | vaccines | blockchain | machine learning | ' +
    'quantum entanglement | plate tectonics | the water cycle | supply and demand | natural selection | ' +
    'the greenhouse effect | neural networks | public key cryptography | the immune system | gravity | ' +
    'electricity | recursion | the stock market | interest rates | DNA replication | climate models | ' +
    'the internet | search engines | solar panels | nuclear fusion | antibiotics | the placebo effect | ' +
    'game theory | opportunity cost | the big bang | relativity | entropy | evolution | plate armour | ' +
    'the printing press | the Roman Republic | the French Revolution | the Silk Road | tides | rainbows | ' +
    'volcanoes | earthquakes | hurricanes | the northern lights | sleep cycles | memory formation | ' +
    'habit formation | compound growth | index funds | bond yields | credit scores | mortgages | taxes | ' +
    'insurance | pensions | exchange rates | GDP | unemployment | tariffs | microchips | transistors | ' +
    'operating systems | databases | caching | load balancing | encryption | compression | version control | ' +
    'containers | virtual machines | DNS | HTTP | TCP | Wi-Fi | GPS | radar | lasers | batteries | electric motors | ' +
    'jet engines | wind turbines | heat pumps | refrigerators | microwaves | 3D printing | CRISPR | stem cells | ' +
    'allergies | metabolism | hydration | caffeine | jet lag | muscle growth | meditation | procrastination | ' +
    'negotiation | public speaking | active listening | time management | budgeting | saving for retirement | ' +
    'photosynthesis in algae | ocean currents | coral reefs | bird migration | pollination | composting | ' +
    'soil erosion | deforestation | recycling | desalination | water treatment | the carbon cycle | ozone',
);

interface Family {
  name: string;
  /** Size of each slot's list (the mixed radix). */
  radix: number[];
  /** Phrasings; each gets the slot values. */
  phrasings: ((s: string[]) => string)[];
  /** Values of each slot. */
  slots: (digit: number, slot: number) => string;
}

const VERSION_COUNT = 12;
const SENTENCES = [2, 3, 4, 5, 6];

const FAMILIES: Family[] = [
  {
    name: 'how-to',
    radix: [VERBS.length, OBJECTS.length, PRODUCTS.length, VERSION_COUNT],
    slots: (d, slot) => (slot === 0 ? VERBS : slot === 1 ? OBJECTS : slot === 2 ? PRODUCTS : null)?.[d] ?? String(d + 1),
    phrasings: [
      ([v, o, p, n]) => `How do I ${v} my ${o} in ${p} ${n}?`,
      ([v, o, p, n]) => `What's the way to ${v} the ${o} in ${p} ${n}?`,
      ([v, o, p, n]) => `${p} ${n}: how can I ${v} my ${o}?`,
      ([v, o, p, n]) => `In ${p} version ${n}, how would I ${v} my ${o}?`,
    ],
  },
  {
    name: 'difference',
    radix: [CONCEPTS.length, CONCEPTS.length - 1, LANGUAGES.length],
    slots: (d, slot) => (slot === 2 ? (LANGUAGES[d] as string) : String(d)), // concept pairs decoded in `question`
    phrasings: [
      ([a, b, l]) => `What is the difference between ${a} and ${b} in ${l}?`,
      ([a, b, l]) => `In ${l}, how does ${a} differ from ${b}?`,
      ([a, b, l]) => `Explain the difference between ${a} and ${b} in ${l}.`,
    ],
  },
  {
    name: 'troubleshooting',
    radix: [THINGS.length, SYMPTOMS.length, EVENTS.length],
    slots: (d, slot) => ((slot === 0 ? THINGS : slot === 1 ? SYMPTOMS : EVENTS)[d] as string),
    phrasings: [
      ([t, s, e]) => `Why does my ${t} ${s} after ${e}?`,
      ([t, s, e]) => `My ${t} started to ${s} after ${e}, why is that?`,
      ([t, s, e]) => `After ${e}, my ${t} seems to ${s}. What could cause this?`,
    ],
  },
  {
    name: 'writing',
    radix: [FORMS.length, TOPICS.length, AUDIENCES.length],
    slots: (d, slot) => ((slot === 0 ? FORMS : slot === 1 ? TOPICS : AUDIENCES)[d] as string),
    phrasings: [
      ([f, t, a]) => `Write a ${f} about ${t} for ${a}.`,
      ([f, t, a]) => `Can you write a ${f} on ${t} for ${a}?`,
      ([f, t, a]) => `Please compose a ${f} about ${t} aimed at ${a}.`,
    ],
  },
  {
    name: 'explanation',
    radix: [EXPLAIN.length, AUDIENCES.length, SENTENCES.length],
    slots: (d, slot) => (slot === 0 ? (EXPLAIN[d] as string) : slot === 1 ? (AUDIENCES[d] as string) : String(SENTENCES[d])),
    phrasings: [
      ([c, a, n]) => `Explain ${c} to ${a} in ${n} sentences.`,
      ([c, a, n]) => `In ${n} sentences, explain ${c} for ${a}.`,
      ([c, a, n]) => `Can you explain ${c} to ${a} in ${n} sentences?`,
    ],
  },
];

/** Family of question i: a fixed pattern of 20 (how-to 10, difference 5, troubleshooting 2, writing 2, explanation 1). */
const PATTERN = [0, 1, 0, 2, 0, 1, 0, 3, 0, 1, 0, 4, 0, 1, 0, 2, 0, 1, 0, 3];
const PER_PATTERN = FAMILIES.map((_, f) => PATTERN.filter((x) => x === f).length);
/** A prime above every family's combination count: (j * A + B) mod M is then a bijection. */
const SCRAMBLE_A = 1_000_003;
const SCRAMBLE_B = 7_919;

function combos(f: Family): number {
  return f.radix.reduce((a, b) => a * b, 1);
}

/** Largest number of distinct questions the generator can make (the smallest family's share bounds it). */
export const MAX_QUESTIONS = Math.min(...FAMILIES.map((f, i) => Math.floor((combos(f) / (PER_PATTERN[i] as number)) * PATTERN.length)));

/** The family and index within it of question i. */
function locate(i: number): { f: number; j: number } {
  const pos = i % PATTERN.length;
  const f = PATTERN[pos] as number;
  let before = 0;
  for (let k = 0; k < pos; k++) if (PATTERN[k] === f) before++;
  return { f, j: Math.floor(i / PATTERN.length) * (PER_PATTERN[f] as number) + before };
}

/** Slot values of question i. */
function slotsOf(i: number): { f: number; values: string[] } {
  const { f, j } = locate(i);
  const fam = FAMILIES[f] as Family;
  const m = combos(fam);
  if (j >= m) throw new RangeError(`question ${i}: family ${fam.name} has only ${m} combinations`);
  let c = (j * SCRAMBLE_A + SCRAMBLE_B) % m;
  const digits: number[] = [];
  for (const r of fam.radix) {
    digits.push(c % r);
    c = Math.floor(c / r);
  }
  let values = digits.map((d, slot) => fam.slots(d, slot));
  if (fam.name === 'difference') {
    // An ordered pair of distinct concepts: the second digit skips the first.
    const a = digits[0] as number;
    const b = (digits[1] as number) >= a ? (digits[1] as number) + 1 : (digits[1] as number);
    values = [CONCEPTS[a] as string, CONCEPTS[b] as string, values[2] as string];
  }
  return { f, values };
}

function seedOf(seed: number, i: number, salt: number): number {
  return (Math.imul(i + 1, 0x9e3779b1) ^ Math.imul(seed, 0x85ebca77) ^ salt) >>> 0;
}

/** Stored question i (its phrasing chosen by the seed). */
export function question(seed: number, i: number): string {
  const { f, values } = slotsOf(i);
  const fam = FAMILIES[f] as Family;
  const rnd = prng(seedOf(seed, i, 0x51));
  return (fam.phrasings[Math.floor(rnd() * fam.phrasings.length)] as (s: string[]) => string)(values);
}

/** A paraphrase of stored question i: another phrasing of the same slots, sometimes reworded at the edges. */
export function paraphrase(seed: number, i: number, rnd: () => number): string {
  const { f, values } = slotsOf(i);
  const fam = FAMILIES[f] as Family;
  const stored = Math.floor(prng(seedOf(seed, i, 0x51))() * fam.phrasings.length);
  const other = (stored + 1 + Math.floor(rnd() * (fam.phrasings.length - 1))) % fam.phrasings.length;
  let q = (fam.phrasings[other] as (s: string[]) => string)(values);
  const r = rnd();
  if (r < 0.2) q = `${q} Thanks!`;
  else if (r < 0.35) q = q.replace(/[?.]$/, '');
  else if (r < 0.45) q = `Quick question: ${q.charAt(0).toLowerCase()}${q.slice(1)}`;
  return q;
}

/** Whether stored question i has a version number that a near miss can change (how-to questions). */
export function hasVersion(i: number): boolean {
  return FAMILIES[locate(i).f]?.name === 'how-to';
}

/** Stored how-to question i with another version number, in its own phrasing: the guard must refuse it. */
export function nearMiss(seed: number, i: number, rnd: () => number): string {
  const { f, values } = slotsOf(i);
  const fam = FAMILIES[f] as Family;
  if (fam.name !== 'how-to') throw new RangeError(`question ${i} has no version number`);
  const n = Number(values[3]);
  const other = ((n - 1 + 1 + Math.floor(rnd() * (VERSION_COUNT - 1))) % VERSION_COUNT) + 1;
  const stored = Math.floor(prng(seedOf(seed, i, 0x51))() * fam.phrasings.length);
  return (fam.phrasings[stored] as (s: string[]) => string)([values[0] as string, values[1] as string, values[2] as string, String(other)]);
}

const COUNTRIES = words('France | Peru | Kenya | Norway | Vietnam | Chile | Ghana | Canada | Japan | Egypt | Poland | Nepal | Cuba | Fiji | Iceland | Mongolia');
const PHRASES = words("good morning | where is the station | I would like a coffee | how much does it cost | see you tomorrow | the bill, please | I am lost | happy birthday | what time is it | nice to meet you");
const TARGET_LANGUAGES = words('French | Spanish | German | Italian | Portuguese | Dutch | Swedish | Polish | Turkish | Greek | Korean | Hindi');
const UNITS = [
  ['miles', 'kilometres'],
  ['pounds', 'kilograms'],
  ['Fahrenheit', 'Celsius'],
  ['gallons', 'litres'],
  ['feet', 'metres'],
  ['ounces', 'grams'],
  ['acres', 'hectares'],
  ['cups', 'millilitres'],
] as const;
const TRIVIA = words(
  'Who painted the Sistine Chapel ceiling? | How tall is Mount Everest? | When did the Berlin Wall fall? | ' +
    'What is the speed of light? | How many bones are in the human body? | Who wrote Pride and Prejudice? | ' +
    'What is the largest desert on Earth? | How far away is the Moon? | Which planet has the most moons? | ' +
    'What is the boiling point of water at altitude? | Who invented the telephone? | What language has the most speakers?',
);

/** A question of a family never stored: translation, a country's facts, a unit conversion, trivia. */
export function unrelated(rnd: () => number): string {
  const k = rnd();
  if (k < 0.3) return `Translate "${pick(rnd, PHRASES)}" into ${pick(rnd, TARGET_LANGUAGES)}.`;
  if (k < 0.55) return `What is the capital of ${pick(rnd, COUNTRIES)} and what is its population?`;
  if (k < 0.8) {
    const [a, b] = pick(rnd, UNITS);
    return `Convert ${1 + Math.floor(rnd() * 500)} ${a} to ${b}.`;
  }
  return pick(rnd, TRIVIA);
}

export type QueryKind = 'exact' | 'paraphrase' | 'near-miss' | 'unrelated';

export interface Query {
  kind: QueryKind;
  text: string;
  /** The stored question it derives from (exact, paraphrase, near miss). */
  source?: number;
}

/** The query mix: exact 10%, paraphrase 50%, near miss 15%, unrelated 25%. */
export const QUERY_MIX: Record<QueryKind, number> = { exact: 0.1, paraphrase: 0.5, 'near-miss': 0.15, unrelated: 0.25 };

/** The next query against a cache holding questions 0..stored-1. */
export function nextQuery(seed: number, stored: number, rnd: () => number): Query {
  const k = rnd();
  const src = Math.floor(rnd() * stored);
  if (k < QUERY_MIX.exact) return { kind: 'exact', text: question(seed, src), source: src };
  if (k < QUERY_MIX.exact + QUERY_MIX.paraphrase) return { kind: 'paraphrase', text: paraphrase(seed, src, rnd), source: src };
  if (k < QUERY_MIX.exact + QUERY_MIX.paraphrase + QUERY_MIX['near-miss']) {
    // A how-to question near src (every other question of the pattern is one).
    let i = src;
    while (!hasVersion(i)) i = (i + 1) % stored;
    return { kind: 'near-miss', text: nearMiss(seed, i, rnd), source: i };
  }
  return { kind: 'unrelated', text: unrelated(rnd) };
}
