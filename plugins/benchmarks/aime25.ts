/** Preset: AIME 2025 (problem, integer answer), in the ARPO release's JSONL layout. Takes `path` (and any jsonl option). Correct: mathematical equivalence (mathEqual). */
import { jsonlBenchmark } from "./jsonl.ts";

export default jsonlBenchmark("aime25", {
  question_field: "problem",
  answer_extract: "none",
  tools: ["python"],
  judge: "math",
});
