/** The store as a stage sees it: run/stages.ts StageStore over a Store. */
import type { Store } from "../store/store.ts";
import type { StageStore } from "./stages.ts";

/**
 * The stage's view of `store`; `label` (a stage, or a run and stage) goes into read errors.
 *
 * @example
 * ```ts
 * import { Store } from "../store/store.ts";
 * import { stageStore } from "./stage_store.ts";
 *
 * const st = stageStore(new Store(await Deno.makeTempDir()), "stage 'sft'");
 * const d = await st.putParts([new Uint8Array([1, 2]), new Uint8Array([3])]);
 * console.log(d === (await st.putBytes(new Uint8Array([1, 2, 3])))); // true
 * ```
 */
export function stageStore(store: Store, label: string): StageStore {
  return {
    putBytes: (b) => store.putBytes(b),
    putParts: (p) => store.putParts(p),
    putJson: (v) => store.putJson(v),
    getBytes: (d) => store.getBytes(d, label),
    getJson: (d) => store.getJson(d, label),
    has: (d) => store.has(d),
  };
}
