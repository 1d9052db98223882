/**
 * The search tools' result text and the local ranking, shared by the `search` tool's local
 * backend and by benchmarks whose demonstrations must show exactly what that backend returns
 * (kbqa). The format is the ARPO reference's: one `Page N: …` line per hit.
 */
import MiniSearch from "minisearch";
import type { Document } from "../plugin/contracts.ts";

/** One search hit to format: a title (optional) and its text. */
export interface SearchPage {
  /** The page's title, if it has one. */
  title?: string;
  /** The page's text; whitespace is collapsed and long text cut when formatted. */
  text: string;
}

/** How formatSearchResults lays out the pages. */
export interface FormatOptions {
  /** Longest snippet kept per page, in characters; longer ones end with " …" (default 400). */
  snippetChars?: number;
}

/**
 * One line per page: `Page 1: Title: text`, snippets capped; "No results found." when none.
 *
 * @param pages The hits, best first.
 * @param opts The snippet length.
 * @returns The result text a search tool returns.
 *
 * @example
 * ```ts
 * import { formatSearchResults } from "arpo-lab";
 * import assert from "node:assert/strict";
 *
 * const pages = [{ title: "Paris", text: "The capital\n of France." }];
 * assert.equal(formatSearchResults(pages), "Page 1: Paris: The capital of France.");
 * assert.equal(formatSearchResults([]), "No results found.");
 * ```
 */
export function formatSearchResults(
  pages: readonly SearchPage[],
  opts: FormatOptions = {},
): string {
  const cap = opts.snippetChars ?? 400;
  if (pages.length === 0) return "No results found.";
  return pages.map((p, i) => {
    const flat = p.text.replace(/\s+/g, " ").trim();
    let body = flat;
    if (flat.length > cap) {
      const cut = flat.slice(0, cap);
      const sp = cut.lastIndexOf(" ");
      body = (sp > cap / 2 ? cut.slice(0, sp) : cut) + " …";
    }
    const title = p.title?.replace(/\s+/g, " ").trim();
    return `Page ${i + 1}: ${title ? `${title}: ` : ""}${body}`;
  }).join("\n");
}

/**
 * A BM25 index over documents (minisearch; title boosted), with a deterministic top-k.
 *
 * @example
 * ```ts
 * import { LocalIndex } from "arpo-lab";
 * import assert from "node:assert/strict";
 *
 * const index = new LocalIndex([
 *   { id: "d1", title: "Paris", text: "Paris is the capital of France." },
 *   { id: "d2", title: "Berlin", text: "Berlin is the capital of Germany." },
 * ]);
 * assert.deepEqual(index.search("capital of France", 1).map((d) => d.id), ["d1"]);
 * ```
 */
export class LocalIndex {
  readonly #ms: MiniSearch<Document>;
  readonly #docs: Map<string, Document>;

  /**
   * Index the documents' titles and texts.
   *
   * @param docs The corpus; ids must be unique.
   */
  constructor(docs: readonly Document[]) {
    this.#ms = new MiniSearch<Document>({ fields: ["title", "text"], idField: "id" });
    this.#docs = new Map(docs.map((d) => [d.id, d]));
    this.#ms.addAll(docs as Document[]);
  }

  /** Top-k documents for a query; ties broken by id so the order never depends on insertion. */
  search(query: string, topk: number): Document[] {
    const hits = this.#ms.search(query, { boost: { title: 2 }, combineWith: "OR" });
    hits.sort((a, b) => b.score - a.score || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    return hits.slice(0, topk).map((h) => this.#docs.get(h.id)!);
  }
}

/**
 * Rank documents for a query and format the top-k as the search tool does.
 *
 * @param index The index to search.
 * @param query The query.
 * @param opts `topk` (default 3) and the snippet length.
 * @returns The result text, one `Page N: …` line per hit.
 *
 * @example
 * ```ts
 * import { LocalIndex, searchDocuments } from "arpo-lab";
 * import assert from "node:assert/strict";
 *
 * const index = new LocalIndex([
 *   { id: "d1", title: "Paris", text: "Paris is the capital of France." },
 *   { id: "d2", title: "Berlin", text: "Berlin is the capital of Germany." },
 * ]);
 * assert.equal(
 *   searchDocuments(index, "Germany", { topk: 1 }),
 *   "Page 1: Berlin: Berlin is the capital of Germany.",
 * );
 * ```
 */
export function searchDocuments(
  index: LocalIndex,
  query: string,
  opts: FormatOptions & { topk?: number } = {},
): string {
  return formatSearchResults(index.search(query, opts.topk ?? 3), opts);
}
