/**
 * The default prompt of the tag protocol: a system message that explains `<think>`, tool calls,
 * `<result>` and `<answer>` with `\boxed{}`, and a user message with the question. Benchmarks
 * (built-in and third-party) build Task.prompt with `buildPrompt`.
 */
import type { ChatMessage } from "../plugin/contracts.ts";

/** A tool as the system prompt describes it. */
export interface PromptTool {
  /** The tool's tag, as in `<tag>…</tag>`. */
  tag: string;
  /** What the tool does and what its body is, in one line. */
  description: string;
}

/** The tools the default prompt describes. */
export const DEFAULT_PROMPT_TOOLS: readonly PromptTool[] = [
  { tag: "search", description: "search a knowledge source; the body is a short query" },
  {
    tag: "python",
    description: "run Python code; the body is a program and what it prints is returned",
  },
];

/**
 * Prompt descriptions for tool tags: the defaults for search/python, a generic line otherwise.
 *
 * @param tags Tool tags.
 * @returns One PromptTool per tag, in order.
 *
 * @example
 * ```ts
 * import { promptTools } from "arpo-lab";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(promptTools(["calendar"]), [
 *   { tag: "calendar", description: "call the calendar tool; its output is returned" },
 * ]);
 * ```
 */
export function promptTools(tags: readonly string[]): PromptTool[] {
  return tags.map((tag) =>
    DEFAULT_PROMPT_TOOLS.find((t) => t.tag === tag) ??
      { tag, description: `call the ${tag} tool; its output is returned` }
  );
}

/**
 * The system prompt for a set of tools (the default: search and python).
 *
 * @param tools The tools to describe; none for a prompt without tool calls.
 * @returns The system message text.
 *
 * @example
 * ```ts
 * import { promptTools, systemPrompt } from "arpo-lab";
 * import assert from "node:assert/strict";
 *
 * const system = systemPrompt(promptTools(["calendar"]));
 * assert.ok(system.includes("<calendar> … </calendar>"));
 * ```
 */
export function systemPrompt(tools: readonly PromptTool[] = DEFAULT_PROMPT_TOOLS): string {
  const lines = [
    "You are a careful assistant who solves a question step by step and may call tools while " +
    "reasoning.",
    "Write your reasoning inside <think> </think>.",
  ];
  if (tools.length > 0) {
    lines.push(
      "To call a tool, write its input between the tool's tags and stop; the tool's output is " +
        "then given to you between <result> and </result>, and you continue from there. Tools:",
    );
    for (const t of tools) lines.push(`- <${t.tag}> … </${t.tag}>: ${t.description}`);
  }
  lines.push(
    "You may think and call tools several times. End with the answer inside <answer> </answer>, " +
      "with the exact final answer in \\boxed{}, for example: <answer> The answer is " +
      "\\boxed{42}. </answer>",
  );
  return lines.join("\n");
}

/**
 * Chat messages for a question: the protocol's system prompt, then the question as the user.
 *
 * @param question The question.
 * @param opts `tools` for the default system prompt; or `system`, a system prompt of your own
 * (null or empty for none).
 * @returns The messages, for Task.prompt.
 *
 * @example
 * ```ts
 * import { buildPrompt, promptTools } from "arpo-lab";
 * import assert from "node:assert/strict";
 *
 * const prompt = buildPrompt("What is 2 + 2?", { tools: promptTools(["python"]) });
 * assert.deepEqual(prompt.map((m) => m.role), ["system", "user"]);
 * assert.deepEqual(buildPrompt("What is 2 + 2?", { system: null }), [
 *   { role: "user", content: "What is 2 + 2?" },
 * ]);
 * ```
 */
export function buildPrompt(
  question: string,
  opts: { tools?: readonly PromptTool[]; system?: string | null } = {},
): ChatMessage[] {
  const system = opts.system === undefined ? systemPrompt(opts.tools) : opts.system;
  const msgs: ChatMessage[] = [];
  if (system !== null && system.length > 0) msgs.push({ role: "system", content: system });
  msgs.push({ role: "user", content: question });
  return msgs;
}
