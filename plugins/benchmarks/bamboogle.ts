/** Preset: Bamboogle (question, list of aliases), in the ARPO release's JSONL layout. Takes `path` (and any jsonl option). Correct: exact match after SQuAD normalization, any alias. */
import { jsonlBenchmark } from "./jsonl.ts";

export default jsonlBenchmark("bamboogle", { answer_extract: "none", judge: "exact" });
