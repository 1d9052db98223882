/**
 * safetensors reading (F32/F16/BF16 → F32; single file or sharded with model.safetensors.index.json)
 * and writing (F32). Format: u64 LE header length, JSON header {name: {dtype, shape,
 * data_offsets: [begin, end]}, "__metadata__"?: {…}}, then the raw little-endian data.
 */
import { ArpoError } from "../errors.ts";
import { concatBytes } from "../store/bytes.ts";
import { readWhole } from "../store/files.ts";

export interface F32Tensor {
  shape: number[];
  data: Float32Array;
}

export type TensorMap = Map<string, F32Tensor>;

const DTYPE_BYTES: Record<string, number> = { F32: 4, F16: 2, BF16: 2 };

/** IEEE half bits → number. */
export function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 0x1f) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** Parse one safetensors file's bytes. `where` names it in errors. */
export function parseSafetensors(bytes: Uint8Array, where: string): TensorMap {
  if (bytes.byteLength < 8) throw new ArpoError(`${where}: not a safetensors file (too short)`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = Number(dv.getBigUint64(0, true));
  if (n > bytes.byteLength - 8) {
    throw new ArpoError(`${where}: header length ${n} exceeds file size ${bytes.byteLength}`);
  }
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  } catch (e) {
    throw new ArpoError(`${where}: header is not valid JSON (${(e as Error).message})`);
  }
  const base = 8 + n;
  const out: TensorMap = new Map();
  for (const [name, info] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    const t = info as { dtype?: string; shape?: number[]; data_offsets?: [number, number] };
    const dt = String(t.dtype);
    const width = DTYPE_BYTES[dt];
    if (!width) {
      throw new ArpoError(
        `${where}: tensor '${name}' has dtype ${dt}; supported: ${
          Object.keys(DTYPE_BYTES).join(", ")
        }`,
      );
    }
    const shape = (t.shape ?? []).map(Number);
    const count = shape.reduce((a, b) => a * b, 1);
    const [b, e] = t.data_offsets ?? [0, 0];
    if (e - b !== count * width || base + e > bytes.byteLength) {
      throw new ArpoError(
        `${where}: tensor '${name}' data_offsets [${b}, ${e}] do not fit shape [${shape}] of ${dt}`,
      );
    }
    const start = bytes.byteOffset + base + b;
    const src = new DataView(bytes.buffer, start, e - b);
    if (dt === "F32" && start % 4 === 0) {
      // A view, not a copy: F32 weights stay in the buffer the file was read into (one copy).
      out.set(name, { shape, data: new Float32Array(bytes.buffer, start, count) });
      continue;
    }
    const data = new Float32Array(count);
    if (dt === "F32") {
      for (let i = 0; i < count; i++) data[i] = src.getFloat32(4 * i, true);
    } else if (dt === "BF16") {
      const u = new Uint32Array(data.buffer);
      for (let i = 0; i < count; i++) u[i] = src.getUint16(2 * i, true) << 16;
    } else {
      for (let i = 0; i < count; i++) data[i] = f16ToF32(src.getUint16(2 * i, true));
    }
    out.set(name, { shape, data });
  }
  return out;
}

/** Serialize F32 tensors (names sorted, so the bytes depend only on the contents). */
export function serializeSafetensors(
  tensors: TensorMap,
  metadata?: Record<string, string>,
): Uint8Array {
  return concatBytes(safetensorsParts(tensors, metadata));
}

/**
 * The bytes of `serializeSafetensors` as pieces: the header, then a view of each tensor's own
 * data (no copy), for writing a file of several GB without building it in memory.
 */
export function safetensorsParts(
  tensors: TensorMap,
  metadata?: Record<string, string>,
): Uint8Array[] {
  const names = [...tensors.keys()].sort();
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let off = 0;
  for (const name of names) {
    const t = tensors.get(name)!;
    header[name] = { dtype: "F32", shape: t.shape, data_offsets: [off, off + t.data.byteLength] };
    off += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  // Pad the header with spaces so the data starts 8-byte aligned (as the Rust writer does).
  while ((8 + new TextEncoder().encode(json).length) % 8 !== 0) json += " ";
  const hb = new TextEncoder().encode(json);
  const head = new Uint8Array(8 + hb.length);
  new DataView(head.buffer).setBigUint64(0, BigInt(hb.length), true);
  head.set(hb, 8);
  return [
    head,
    ...names.map((name) => {
      const d = tensors.get(name)!.data;
      return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
    }),
  ];
}

export type ReadFile = (path: string) => Promise<Uint8Array>;

export const defaultReadFile: ReadFile = (path) => readWhole(path);

/** Bytes per element of each dtype as stored and, read, as F32: what loading a file costs. */
export interface SafetensorsSize {
  /** Bytes of tensor data in the file. */
  fileBytes: number;
  /** Bytes the tensors take once read as F32. */
  f32Bytes: number;
  /** Bytes of tensors stored in a dtype other than F32 (converted, so read into a second buffer). */
  convertedFileBytes: number;
  /** F32 bytes of the largest tensor. */
  largestF32Bytes: number;
}

/** Sizes from a safetensors file's header alone (the data is not read). */
export async function safetensorsSize(path: string): Promise<SafetensorsSize> {
  const f = await Deno.open(path, { read: true });
  try {
    const head = new Uint8Array(8);
    if ((await f.read(head)) !== 8) {
      throw new ArpoError(`${path}: not a safetensors file (too short)`);
    }
    const n = Number(new DataView(head.buffer).getBigUint64(0, true));
    const size = (await f.stat()).size;
    if (n > size - 8) throw new ArpoError(`${path}: header length ${n} exceeds file size ${size}`);
    const hb = new Uint8Array(n);
    for (let got = 0; got < n;) {
      const r = await f.read(hb.subarray(got));
      if (r === null) throw new ArpoError(`${path}: truncated header`);
      got += r;
    }
    let header: Record<string, { dtype?: string; shape?: number[] }>;
    try {
      header = JSON.parse(new TextDecoder().decode(hb));
    } catch (e) {
      throw new ArpoError(`${path}: header is not valid JSON (${(e as Error).message})`);
    }
    const out = { fileBytes: 0, f32Bytes: 0, convertedFileBytes: 0, largestF32Bytes: 0 };
    for (const [name, t] of Object.entries(header)) {
      if (name === "__metadata__") continue;
      const count = (t.shape ?? []).reduce((a, b) => a * Number(b), 1);
      const w = DTYPE_BYTES[String(t.dtype)] ?? 4;
      out.fileBytes += count * w;
      out.f32Bytes += count * 4;
      out.largestF32Bytes = Math.max(out.largestF32Bytes, count * 4);
      if (t.dtype !== "F32") out.convertedFileBytes += count * w;
    }
    return out;
  } finally {
    f.close();
  }
}

async function exists(p: string): Promise<boolean> {
  try {
    return (await Deno.stat(p)).isFile;
  } catch {
    return false;
  }
}

/** The safetensors files of a model directory: model.safetensors or the shards of its index. */
export async function weightFiles(
  dir: string,
  readFile: ReadFile = defaultReadFile,
): Promise<string[]> {
  const join = (f: string) => `${dir.replace(/\/+$/, "")}/${f}`;
  const single = join("model.safetensors");
  if (await exists(single)) return [single];
  const index = join("model.safetensors.index.json");
  if (!(await exists(index))) return [];
  const idx = await readIndex(index, readFile);
  return [...new Set(Object.values(idx))].sort().map(join);
}

async function readIndex(index: string, readFile: ReadFile): Promise<Record<string, string>> {
  let idx: { weight_map?: Record<string, string> };
  try {
    idx = JSON.parse(new TextDecoder().decode(await readFile(index)));
  } catch (e) {
    throw new ArpoError(`${index}: not valid JSON (${(e as Error).message})`);
  }
  if (!idx.weight_map || typeof idx.weight_map !== "object") {
    throw new ArpoError(`${index}: missing 'weight_map'`);
  }
  return idx.weight_map;
}

/**
 * Read the weights of a model directory: model.safetensors, or the shards listed by
 * model.safetensors.index.json.
 */
export async function readModelWeights(
  dir: string,
  readFile: ReadFile = defaultReadFile,
): Promise<TensorMap> {
  const join = (f: string) => `${dir.replace(/\/+$/, "")}/${f}`;
  const single = join("model.safetensors");
  const index = join("model.safetensors.index.json");
  if (await exists(single)) return parseSafetensors(await readFile(single), single);
  if (await exists(index)) {
    const idx = { weight_map: await readIndex(index, readFile) };
    const shards = [...new Set(Object.values(idx.weight_map))].sort();
    const out: TensorMap = new Map();
    for (const shard of shards) {
      const path = join(shard);
      if (!(await exists(path))) {
        throw new ArpoError(`${index} lists shard '${shard}', which is missing from ${dir}`);
      }
      for (const [k, v] of parseSafetensors(await readFile(path), path)) out.set(k, v);
    }
    for (const name of Object.keys(idx.weight_map)) {
      if (!out.has(name)) {
        throw new ArpoError(`${index}: tensor '${name}' is not in shard '${idx.weight_map[name]}'`);
      }
    }
    return out;
  }
  throw new ArpoError(
    `model directory ${dir} has no weights: expected model.safetensors or model.safetensors.index.json`,
  );
}
