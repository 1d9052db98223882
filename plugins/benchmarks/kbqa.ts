/**
 * Synthetic multi-hop QA over a generated knowledge base. People, companies, cities and countries
 * with made-up names are rendered as short documents (one per entity, plus distractor "mention"
 * documents that repeat a person's name next to unrelated facts); `documents()` hands them to the
 * `search` tool's local backend (`with: { backend: local, benchmark: <this name> }`).
 *
 * Questions need 2–3 searches, each query depending on what the previous result said; the
 * `founding_gap` form also needs python (search two years, subtract), so the multi-tool bonus is
 * reachable. Every question is checked answerable: each hop's query ranks the document holding the
 * next fact in the top `top_k` of the same BM25 index the search tool uses (LocalIndex).
 *
 * Demonstrations show search → result → search → … → answer, with each `<result>` text exactly
 * what the local search backend returns for that query (`searchDocuments` with the same `top_k`
 * and `snippet_chars`; set them equal to the search tool's options).
 *
 * Headroom for RL: the train split (and demonstrations) uses `demo_forms`, by default the 2-hop
 * forms and founding_gap; rl and test add the 3-hop forms the demonstrations never show.
 */
import {
  ArpoError,
  buildPrompt,
  defineBenchmark,
  type Document,
  exactMatch,
  frameResult,
  LocalIndex,
  promptTools,
  searchDocuments,
  type Stream,
  stream,
  type Task,
  z,
} from "arpo-lab";

export const KBQA_FORMS = [
  "birth_country",
  "company_city",
  "birth_city_population",
  "founding_gap",
  "company_country",
  "birth_capital",
] as const;
export type KbqaForm = typeof KBQA_FORMS[number];

const options = z.object({
  /** Seed of the knowledge base and questions (default: the experiment seed). */
  seed: z.number().int().optional(),
  people: z.number().int().min(10).max(20000).default(400),
  companies: z.number().int().min(2).max(5000).default(60),
  cities: z.number().int().min(2).max(5000).default(40),
  countries: z.number().int().min(2).max(1000).default(10),
  /** Distractor documents per person (other facts next to the same name). */
  distractors: z.number().int().min(0).max(5).default(1),
  /** Must equal the search tool's `top_k` and `snippet_chars` for demonstrations to match it. */
  top_k: z.number().int().min(1).max(20).default(3),
  snippet_chars: z.number().int().min(20).default(400),
  forms: z.array(z.enum(KBQA_FORMS)).min(1).default([...KBQA_FORMS]),
  demo_forms: z.array(z.enum(KBQA_FORMS)).min(1).default([
    "birth_country",
    "company_city",
    "founding_gap",
  ]),
  sizes: z.object({
    train: z.number().int().min(0).default(500),
    rl: z.number().int().min(0).default(300),
    test: z.number().int().min(0).default(200),
  }).strict().default({ train: 500, rl: 300, test: 200 }),
  tools: z.array(z.string()).default(["search", "python"]),
  /**
   * Replaces the whole system prompt; null drops it (small byte-level models trained here learn
   * the protocol from demonstrations and have no room for a long preamble).
   */
  system: z.string().nullable().optional(),
  /**
   * Demonstration style: `full` (a thought naming each fact and the next lookup) or `short` (the
   * protocol with one thought, for small byte-level models whose context is the budget).
   */
  demo_style: z.enum(["full", "short"]).default("full"),
}).strict();

type Options = z.output<typeof options>;

interface Person {
  name: string;
  job: string;
  born: number;
  city: number;
  company: number;
}
interface Company {
  name: string;
  industry: string;
  founded: number;
  city: number;
}
interface City {
  name: string;
  country: number;
  population: number;
}
interface Country {
  name: string;
  capital: number;
}

/** The generated knowledge base. */
export interface KnowledgeBase {
  people: Person[];
  companies: Company[];
  cities: City[];
  countries: Country[];
  documents: Document[];
}

const ONSETS = [
  "b",
  "d",
  "f",
  "g",
  "k",
  "l",
  "m",
  "n",
  "p",
  "r",
  "s",
  "t",
  "v",
  "z",
  "br",
  "dr",
  "kl",
  "st",
  "tr",
  "ch",
  "sh",
  "th",
];
const VOWELS = ["a", "e", "i", "o", "u", "ai", "ou", "ei"];
const CODAS = ["", "", "n", "r", "l", "s", "th", "m", "x"];
const JOBS = [
  "engineer",
  "painter",
  "chemist",
  "architect",
  "pilot",
  "historian",
  "composer",
  "surgeon",
];
const INDUSTRIES = ["shipping", "software", "textile", "mining", "publishing", "aerospace", "food"];
const SUFFIXES = ["Systems", "Works", "Holdings", "Labs", "Industries", "Group", "Trading"];
const COUNTRY_ENDS = ["ia", "land", "stan", "ora", "mark"];

function cap(s: string): string {
  return s[0].toUpperCase() + s.slice(1);
}

function word(rng: Stream, syllables: number): string {
  let w = "";
  for (let i = 0; i < syllables; i++) {
    w += ONSETS[rng.int(ONSETS.length)] + VOWELS[rng.int(VOWELS.length)];
    if (i === syllables - 1) w += CODAS[rng.int(CODAS.length)];
  }
  return cap(w);
}

/** Draw the knowledge base and render its documents. */
export function generateKb(o: Options, rng: Stream): KnowledgeBase {
  const used = new Set<string>();
  const fresh = (make: () => string, what: string): string => {
    for (let i = 0; i < 1000; i++) {
      const w = make();
      if (!used.has(w.toLowerCase())) {
        used.add(w.toLowerCase());
        return w;
      }
    }
    throw new ArpoError(`kbqa: cannot draw enough distinct ${what} names; ask for fewer`);
  };
  const countries: Country[] = [];
  for (let i = 0; i < o.countries; i++) {
    const n = fresh(() => word(rng, 2) + COUNTRY_ENDS[rng.int(COUNTRY_ENDS.length)], "country");
    countries.push({ name: n, capital: -1 });
  }
  const cities: City[] = [];
  for (let i = 0; i < o.cities; i++) {
    cities.push({
      name: fresh(() => word(rng, 2 + rng.int(2)), "city"),
      // every country gets at least one city (its capital), then at random
      country: i < o.countries ? i : rng.int(o.countries),
      population: rng.range(5000, 2000000),
    });
  }
  for (let c = 0; c < o.countries; c++) {
    const own = cities.map((x, i) => [x, i] as const).filter(([x]) => x.country === c);
    countries[c].capital = own[rng.int(own.length)][1];
  }
  const companies: Company[] = [];
  for (let i = 0; i < o.companies; i++) {
    const first = fresh(() => word(rng, 2), "company");
    companies.push({
      name: `${first} ${SUFFIXES[rng.int(SUFFIXES.length)]}`,
      industry: INDUSTRIES[rng.int(INDUSTRIES.length)],
      founded: rng.range(1850, 2015),
      city: rng.int(o.cities),
    });
  }
  // People share first and last names with one another (the pools are small): distractors.
  const pool = Math.max(8, Math.ceil(Math.sqrt(o.people) * 1.5));
  const firsts = Array.from({ length: pool }, () => fresh(() => word(rng, 2), "first"));
  const lasts = Array.from({ length: pool }, () => fresh(() => word(rng, 2 + rng.int(2)), "last"));
  const names = new Set<string>();
  const people: Person[] = [];
  for (let i = 0; i < o.people; i++) {
    let name = "";
    for (let k = 0; k < 1000 && (name === "" || names.has(name)); k++) {
      name = `${firsts[rng.int(pool)]} ${lasts[rng.int(pool)]}`;
    }
    if (names.has(name)) throw new ArpoError("kbqa: cannot draw enough distinct person names");
    names.add(name);
    people.push({
      name,
      job: JOBS[rng.int(JOBS.length)],
      born: rng.range(1900, 2000),
      city: rng.int(o.cities),
      company: rng.int(o.companies),
    });
  }
  const documents: Document[] = [];
  people.forEach((p, i) => {
    documents.push({
      id: `person-${i}`,
      title: p.name,
      text: `${p.name} is ${/^[aeiou]/.test(p.job) ? "an" : "a"} ${p.job} born in ` +
        `${p.born} in ${cities[p.city].name}. ${p.name} works for ${companies[p.company].name}.`,
    });
  });
  companies.forEach((c, i) => {
    documents.push({
      id: `company-${i}`,
      title: c.name,
      text: `${c.name} is a ${c.industry} company founded in ${c.founded}. Its headquarters ` +
        `are in ${cities[c.city].name}.`,
    });
  });
  cities.forEach((c, i) => {
    documents.push({
      id: `city-${i}`,
      title: c.name,
      text: `${c.name} is a city in ${countries[c.country].name}. It has a population of ` +
        `${c.population}.`,
    });
  });
  countries.forEach((c, i) => {
    documents.push({
      id: `country-${i}`,
      title: c.name,
      text: `${c.name} is a country. Its capital is ${cities[c.capital].name}.`,
    });
  });
  // Mentions: the person's name beside another person's city and company, which a careless
  // reader would take for the person's own.
  people.forEach((p, i) => {
    for (let d = 0; d < o.distractors; d++) {
      // another person (index shifted past i so it is never the person themself)
      const other = people[(i + 1 + rng.int(people.length - 1)) % people.length];
      documents.push({
        id: `mention-${i}-${d}`,
        title: `${cities[other.city].name} meeting`,
        text: `At a meeting in ${cities[other.city].name}, ${p.name} spoke with ${other.name} ` +
          `of ${companies[other.company].name}.`,
      });
    }
  });
  return { people, companies, cities, countries, documents };
}

/** One search hop: the query, the document that must be retrieved, and what it tells. */
interface Hop {
  query: string;
  doc: string;
  /** What the retrieved document tells, as the demonstration's reasoning says it. */
  fact: string;
}

/** A generated question with its reasoning chain. */
export interface KbqaQuestion {
  form: KbqaForm;
  person: number;
  question: string;
  answer: string;
  hops: Hop[];
  /** For founding_gap: the python expression. */
  python?: string;
}

/** The question of a form about person `pi`, with its hops. */
export function makeQuestion(kb: KnowledgeBase, form: KbqaForm, pi: number): KbqaQuestion {
  const p = kb.people[pi];
  const city = kb.cities[p.city];
  const co = kb.companies[p.company];
  const coCity = kb.cities[co.city];
  const hopPerson = (fact: string): Hop => ({
    query: p.name,
    doc: `person-${pi}`,
    fact,
  });
  const hopCompany = (fact: string): Hop => ({
    query: co.name,
    doc: `company-${p.company}`,
    fact,
  });
  const hopCity = (c: number, fact: string): Hop => ({
    query: kb.cities[c].name,
    doc: `city-${c}`,
    fact,
  });
  switch (form) {
    case "birth_country":
      return {
        form,
        person: pi,
        question: `In which country was ${p.name} born?`,
        answer: kb.countries[city.country].name,
        hops: [
          hopPerson(`${p.name} was born in ${city.name}.`),
          hopCity(p.city, `${city.name} is in ${kb.countries[city.country].name}.`),
        ],
      };
    case "company_city":
      return {
        form,
        person: pi,
        question: `In which city does the company that ${p.name} works for have its headquarters?`,
        answer: coCity.name,
        hops: [
          hopPerson(`${p.name} works for ${co.name}.`),
          hopCompany(`${co.name} has its headquarters in ${coCity.name}.`),
        ],
      };
    case "birth_city_population":
      return {
        form,
        person: pi,
        question: `What is the population of the city where ${p.name} was born?`,
        answer: String(city.population),
        hops: [
          hopPerson(`${p.name} was born in ${city.name}.`),
          hopCity(p.city, `${city.name} has a population of ${city.population}.`),
        ],
      };
    case "founding_gap": {
      const [hi, lo] = co.founded >= p.born ? [co.founded, p.born] : [p.born, co.founded];
      return {
        form,
        person: pi,
        question: `How many years apart are the birth of ${p.name} and the founding of the ` +
          `company ${p.name} works for?`,
        answer: String(hi - lo),
        hops: [
          hopPerson(`${p.name} was born in ${p.born} and works for ${co.name}.`),
          hopCompany(`${co.name} was founded in ${co.founded}.`),
        ],
        python: `${hi} - ${lo}`,
      };
    }
    case "company_country": {
      const country = kb.countries[coCity.country];
      return {
        form,
        person: pi,
        question: `In which country does the company that ${p.name} works for have its ` +
          `headquarters?`,
        answer: country.name,
        hops: [
          hopPerson(`${p.name} works for ${co.name}.`),
          hopCompany(`${co.name} has its headquarters in ${coCity.name}.`),
          hopCity(co.city, `${coCity.name} is in ${country.name}.`),
        ],
      };
    }
    case "birth_capital": {
      const ci = city.country, country = kb.countries[ci];
      return {
        form,
        person: pi,
        question: `What is the capital of the country where ${p.name} was born?`,
        answer: kb.cities[country.capital].name,
        hops: [
          hopPerson(`${p.name} was born in ${city.name}.`),
          hopCity(p.city, `${city.name} is in ${country.name}.`),
          {
            query: country.name,
            doc: `country-${ci}`,
            fact: `The capital of ${country.name} is ${kb.cities[country.capital].name}.`,
          },
        ],
      };
    }
  }
}

/** The tools a demonstration calls (their tags are neutralized in its framed results). */
const DEMO_TAGS = ["search", "python"];

/**
 * The demonstration: one search per hop with the backend's exact result text, framed as the
 * rollout frames results (`frameResult`), then the answer.
 */
export function kbqaDemonstration(
  q: KbqaQuestion,
  index: LocalIndex,
  opts: { topk: number; snippetChars: number; style?: "full" | "short" },
): string {
  const short = opts.style === "short";
  const first = q.hops[0];
  let out = short
    ? "<think>Search.</think>"
    : `<think>I need to look up ${first.query} first.</think>`;
  q.hops.forEach((h, i) => {
    const result = searchDocuments(index, h.query, {
      topk: opts.topk,
      snippetChars: opts.snippetChars,
    });
    out += `<search>${h.query}</search>${frameResult(result, DEMO_TAGS)}`;
    if (short) return;
    const nextHop = q.hops[i + 1];
    out += nextHop
      ? `<think>${h.fact} Next I need to look up ${nextHop.query}.</think>`
      : `<think>${h.fact}</think>`;
  });
  if (q.python) {
    out += `<python>print(${q.python})</python>${frameResult(q.answer, DEMO_TAGS)}`;
    if (!short) out += `<think>The difference is ${q.answer} years.</think>`;
  }
  return out +
    (short
      ? `<answer>\\boxed{${q.answer}}</answer>`
      : `<answer>The answer is \\boxed{${q.answer}}.</answer>`);
}

/** True when every hop's query retrieves the document that holds the next fact. */
function answerable(q: KbqaQuestion, index: LocalIndex, topk: number): boolean {
  return q.hops.every((h) => index.search(h.query, topk).some((d) => d.id === h.doc));
}

/** Assign questions to splits: test, then rl, then train; (form, person) never repeats. */
export function generateKbqa(
  o: Options,
  kb: KnowledgeBase,
  index: LocalIndex,
  rng: Stream,
): Record<string, KbqaQuestion[]> {
  const candidates: [KbqaForm, number][] = [];
  for (const f of KBQA_FORMS) for (let p = 0; p < kb.people.length; p++) candidates.push([f, p]);
  const order = rng.shuffle(candidates);
  const out: Record<string, KbqaQuestion[]> = { test: [], rl: [], train: [] };
  const want = (s: "test" | "rl" | "train") => o.sizes[s];
  let k = 0;
  for (const split of ["test", "rl", "train"] as const) {
    const forms = new Set<string>(split === "train" ? o.demo_forms : o.forms);
    // a pass over the remaining candidates; ones of other forms stay for later splits
    const rest: [KbqaForm, number][] = [];
    for (; k < order.length && out[split].length < want(split); k++) {
      const [f, p] = order[k];
      if (!forms.has(f)) {
        rest.push(order[k]);
        continue;
      }
      const q = makeQuestion(kb, f, p);
      if (answerable(q, index, o.top_k)) out[split].push(q);
    }
    if (out[split].length < want(split)) {
      throw new ArpoError(
        `kbqa: only ${out[split].length} answerable ${split} questions of forms ` +
          `${[...forms].join(", ")} (asked for ${want(split)}); add people or ask for fewer`,
      );
    }
    order.splice(0, k, ...rest);
    k = 0;
  }
  return out;
}

export default defineBenchmark({
  description: "synthetic multi-hop QA over a generated knowledge base (search, and python)",
  options,
  create(o, ctx) {
    const root = stream(o.seed ?? ctx.seed, "benchmark", "kbqa");
    const kb = generateKb(o, root.child("kb"));
    const index = new LocalIndex(kb.documents);
    const questions = generateKbqa(o, kb, index, root.child("questions"));
    const tools = promptTools(o.tools);
    const tasks: Record<string, Task[]> = {};
    for (const [split, list] of Object.entries(questions)) {
      tasks[split] = list.map((q, i) => ({
        id: `${split}-${i}`,
        prompt: buildPrompt(q.question, { tools, system: o.system }),
        answers: [q.answer],
        meta: {
          form: q.form,
          hops: q.hops.length,
          queries: q.hops.map((h) => h.query),
          needs: q.python ? ["search", "python"] : ["search"],
        },
      }));
    }
    const check = (split: string) => {
      if (!(split in tasks)) {
        throw new ArpoError(`${ctx.name}: no split '${split}' (splits: train, rl, test)`);
      }
    };
    const demo = { topk: o.top_k, snippetChars: o.snippet_chars, style: o.demo_style };
    return {
      splits: ["train", "rl", "test"],
      tasks(split: string) {
        check(split);
        return tasks[split];
      },
      demonstrations(split: string) {
        check(split);
        return questions[split].map((q, i) => ({
          taskId: tasks[split][i].id,
          prompt: tasks[split][i].prompt,
          response: kbqaDemonstration(q, index, demo),
        }));
      },
      documents: () => kb.documents,
      // Exact match after SQuAD normalization (names, years and counts; as the default).
      correct: (answer: string, task: Task) => exactMatch(answer, task.answers) === 1,
    };
  },
});
