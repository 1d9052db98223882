/** Preset: AIME 2024 (problem, answer), in the ARPO release's JSONL layout. Takes `path` (and any jsonl option). Correct: mathematical equivalence (mathEqual). */
import { jsonlBenchmark } from "./jsonl.ts";

export default jsonlBenchmark("aime24", {
  question_field: "problem",
  answer_extract: "none",
  tools: ["python"],
  judge: "math",
});
