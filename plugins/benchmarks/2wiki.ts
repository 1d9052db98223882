/** Preset: 2WikiMultihopQA (question, list of aliases), in the ARPO release's JSONL layout. Takes `path` (and any jsonl option). Correct: exact match after SQuAD normalization, any alias. */
import { jsonlBenchmark } from "./jsonl.ts";

export default jsonlBenchmark("2wiki", { answer_extract: "none", judge: "exact" });
