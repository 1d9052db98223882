/** Preset: GSM8K test (question, solution with '#### final'), in the ARPO release's JSONL layout. Takes `path` (and any jsonl option). Correct: mathematical equivalence (mathEqual). */
import { jsonlBenchmark } from "./jsonl.ts";

export default jsonlBenchmark("gsm8k", {
  answer_extract: "gsm8k",
  tools: ["python"],
  judge: "math",
});
