/** Preset: MATH-500 (question, LaTeX answer), in the ARPO release's JSONL layout. Takes `path` (and any jsonl option). Correct: mathematical equivalence (mathEqual). */
import { jsonlBenchmark } from "./jsonl.ts";

export default jsonlBenchmark("math500", {
  answer_extract: "none",
  tools: ["python"],
  judge: "math",
});
