/**
 * Training on a split that a stage of the same manifest measures makes the measurement say
 * little about generalization. The stage kinds declare what they train on and measure
 * (`StageKind.splits`); this turns those declarations into warnings `exp` prints.
 */
import type { ResolvedManifest } from "../manifest/mod.ts";
import type { StageKind } from "./stages.ts";

/** One warning per (training stage, measuring stage, benchmark split) that meet. */
export function splitOverlapWarnings(
  manifest: ResolvedManifest,
  kinds: readonly StageKind[],
): string[] {
  const declared = manifest.stages.map((s) => {
    const kind = kinds.find((k) => k.kind === s.kind);
    return { name: s.name, ...(kind?.splits?.(s.options as never) ?? {}) };
  });
  const out: string[] = [];
  for (const t of declared) {
    for (const tr of t.trains ?? []) {
      for (const m of declared) {
        for (const me of m.measures ?? []) {
          if (me.benchmark !== tr.benchmark || me.split !== tr.split) continue;
          out.push(
            `stage '${t.name}' trains on split '${tr.split}' of benchmark '${tr.benchmark}', ` +
              `which ${m.name === t.name ? "it also evaluates on" : `stage '${m.name}' measures`}` +
              `: its scores then show memorization, not generalization (use another split)`,
          );
        }
      }
    }
  }
  return out;
}
