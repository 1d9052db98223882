/**
 * `arpo score <reward> --response FILE --answer "…" [--answer "…"]… [--with JSON] [--json]`:
 * score one response text (a file, or `-` for stdin) with a reward plugin and print the reward
 * and its parts. One `--answer` per accepted alias.
 */
import { ArpoError, describeError } from "../../errors.ts";
import { parse } from "./_common.ts";
import { loadLocalPlugin } from "../../plugin/local.ts";
import { parseWith } from "./bench-data.ts";

export const summary = "score a response file with a reward plugin and print its parts";

const USAGE = 'deno task arpo score <reward> --response FILE|- --answer "…" [--answer "…"]… ' +
  "[--with JSON] [--json]";

async function readResponse(path: string): Promise<string> {
  try {
    if (path === "-") return await new Response(Deno.stdin.readable).text();
    return await Deno.readTextFile(path);
  } catch (e) {
    throw new ArpoError(`score: cannot read --response '${path}': ${describeError(e)}`);
  }
}

export async function run(args: string[]): Promise<number> {
  const { values: v, positionals } = parse("score", USAGE, args, {
    response: { type: "string", arg: "FILE|-", help: "the response to score ('-': stdin)" },
    answer: { type: "string", multiple: true, arg: "TEXT", help: "an accepted answer" },
    with: { type: "string" },
    json: { type: "boolean" },
  }, { store: false });
  if (positionals.length !== 1 || v.response === undefined || !v.answer?.length) {
    throw new ArpoError(
      `score: expected a reward name or path, --response and at least one --answer\n` +
        `usage: ${USAGE}`,
      { exitCode: 2 },
    );
  }
  const use = positionals[0];
  const reward = await loadLocalPlugin("reward", use, parseWith(v.with, "score"));
  const response = await readResponse(v.response);
  const answers = v.answer;
  const result = reward.score({
    task: { id: "cli", prompt: "", answers },
    response,
    answers,
    toolCalls: [],
  });
  if (v.json) {
    console.log(JSON.stringify({ reward: result.reward, parts: result.parts }, null, 2));
    return 0;
  }
  console.log(`reward: ${result.reward}`);
  for (const [k, x] of Object.entries(result.parts)) console.log(`  ${k}: ${x}`);
  return 0;
}
