/**
 * The trainer's flat parameter layout: every parameter tensor (expectedShapes order) laid end to
 * end in one Float32Array, so each weight the forward pass reads is a zero-copy view into that
 * buffer, and the AdamW update runs over groups of consecutive tensors: ~15 nodes per group
 * instead of ~15 per tensor. A group holds whole tensors up to GROUP_ELEMENTS elements (a larger
 * tensor is a group of its own), which bounds the update's temporaries (a few group-sized
 * buffers) however large the model: one flat update over everything would hold several copies
 * of all parameters at once.
 */
import type { DecoderConfig } from "../model/config.ts";
import type { TensorMap } from "../model/safetensors.ts";
import { expectedShapes } from "../model/weights.ts";

/** Most elements in one AdamW group (unless a single tensor is larger): 16 MB of float32. */
export const GROUP_ELEMENTS = 1 << 22;

/** A run of consecutive parameters updated by one chain of nodes. */
export interface FlatGroup {
  /** Parameter indices [first, end). */
  first: number;
  end: number;
  /** Element range [start, stop) in the flat buffer. */
  start: number;
  stop: number;
}

export interface FlatLayout {
  /** Parameter names in expectedShapes order. */
  names: string[];
  shapes: number[][];
  /** Start of each parameter in the flat buffer (elements). */
  offsets: number[];
  sizes: number[];
  /** Elements in all (the flat buffer's length). */
  total: number;
  groups: FlatGroup[];
}

export function flatLayout(
  cfg: DecoderConfig,
  groupElements: number = GROUP_ELEMENTS,
): FlatLayout {
  const names: string[] = [], shapes: number[][] = [], offsets: number[] = [];
  const sizes: number[] = [];
  let total = 0;
  for (const [name, shape] of expectedShapes(cfg)) {
    const n = shape.reduce((a, b) => a * b, 1);
    names.push(name);
    shapes.push([...shape]);
    offsets.push(total);
    sizes.push(n);
    total += n;
  }
  const groups: FlatGroup[] = [];
  for (let i = 0; i < names.length; i++) {
    const g = groups.at(-1);
    if (g && g.stop - g.start + sizes[i] <= groupElements) {
      g.end = i + 1;
      g.stop += sizes[i];
    } else groups.push({ first: i, end: i + 1, start: offsets[i], stop: offsets[i] + sizes[i] });
  }
  return { names, shapes, offsets, sizes, total, groups };
}

/** Copy a tensor map (all of the layout's names, right sizes: checked by the caller) into `out`. */
export function flatten(
  l: FlatLayout,
  m: TensorMap,
  out = new Float32Array(l.total),
): Float32Array {
  l.names.forEach((name, i) => out.set(m.get(name)!.data, l.offsets[i]));
  return out;
}

/** A tensor map of views into `flat` (no copy: they change when `flat` does). */
export function views(l: FlatLayout, flat: Float32Array): TensorMap {
  const m: TensorMap = new Map();
  l.names.forEach((name, i) => {
    const o = l.offsets[i];
    m.set(name, { shape: l.shapes[i], data: flat.subarray(o, o + l.sizes[i]) });
  });
  return m;
}

/** A tensor map with its own copy of each parameter of `flat`. */
export function unflatten(l: FlatLayout, flat: Float32Array): TensorMap {
  const m: TensorMap = new Map();
  l.names.forEach((name, i) => {
    const o = l.offsets[i];
    m.set(name, { shape: [...l.shapes[i]], data: flat.slice(o, o + l.sizes[i]) });
  });
  return m;
}
