/**
 * TensorBoard event files, written by hand: a file is a sequence of records (uint64 length,
 * masked CRC32C of the length, the bytes, masked CRC32C of the bytes; little-endian), each record
 * a serialized `tensorflow.Event` protobuf. Only what scalars need is encoded:
 *
 *   Event   { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
 *   Summary { repeated Value value = 1; }
 *   Value   { string tag = 1; float simple_value = 2; }
 *
 * W&B (`wandb sync --sync-tensorboard`) and MLflow import these files.
 */

// ---------------------------------------------------------------------------------------------
// CRC32C (Castagnoli), the checksum TFRecord uses, and its masking

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

export function crc32c(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** TFRecord's masked CRC: rotate right by 15, add a constant (so CRCs of CRCs stay useful). */
export function maskedCrc32c(bytes: Uint8Array): number {
  const c = crc32c(bytes);
  return ((((c >>> 15) | (c << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

// ---------------------------------------------------------------------------------------------
// protobuf encoding (the few wire types Event needs)

class Proto {
  private parts: number[] = [];
  varint(v: bigint | number): this {
    let x = BigInt.asUintN(64, BigInt(v));
    while (x >= 0x80n) {
      this.parts.push(Number(x & 0x7fn) | 0x80);
      x >>= 7n;
    }
    this.parts.push(Number(x));
    return this;
  }
  key(field: number, wire: number): this {
    return this.varint((field << 3) | wire);
  }
  double(field: number, v: number): this {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setFloat64(0, v, true);
    this.key(field, 1).parts.push(...b);
    return this;
  }
  float(field: number, v: number): this {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    this.key(field, 5).parts.push(...b);
    return this;
  }
  int(field: number, v: number): this {
    return this.key(field, 0).varint(v);
  }
  bytes(field: number, b: Uint8Array): this {
    this.key(field, 2).varint(b.length).parts.push(...b);
    return this;
  }
  string(field: number, s: string): this {
    return this.bytes(field, new TextEncoder().encode(s));
  }
  done(): Uint8Array {
    return new Uint8Array(this.parts);
  }
}

/** One scalar of one step. */
export interface ScalarPoint {
  tag: string;
  step: number;
  value: number;
  /** Seconds since the epoch. */
  wallTime: number;
}

function eventBytes(
  e: { wallTime: number; step?: number; fileVersion?: string; scalars?: ScalarPoint[] },
) {
  const p = new Proto().double(1, e.wallTime);
  if (e.step !== undefined) p.int(2, e.step);
  if (e.fileVersion !== undefined) p.string(3, e.fileVersion);
  if (e.scalars) {
    const summary = new Proto();
    for (const s of e.scalars) {
      summary.bytes(1, new Proto().string(1, s.tag).float(2, s.value).done());
    }
    p.bytes(5, summary.done());
  }
  return p.done();
}

/** One TFRecord: length, its masked CRC, the data, its masked CRC. */
export function tfRecord(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 + 4 + data.length + 4);
  const dv = new DataView(out.buffer);
  dv.setBigUint64(0, BigInt(data.length), true);
  dv.setUint32(8, maskedCrc32c(out.subarray(0, 8)), true);
  out.set(data, 12);
  dv.setUint32(12 + data.length, maskedCrc32c(data), true);
  return out;
}

/**
 * The bytes of an event file: the `brain.Event:2` version event, then one event per step with
 * that step's scalars (in the order given).
 */
export function eventFile(points: readonly ScalarPoint[], startWallTime: number): Uint8Array {
  const byStep = new Map<number, ScalarPoint[]>();
  for (const p of points) {
    const l = byStep.get(p.step) ?? [];
    l.push(p);
    byStep.set(p.step, l);
  }
  const records = [tfRecord(eventBytes({ wallTime: startWallTime, fileVersion: "brain.Event:2" }))];
  for (const step of [...byStep.keys()].sort((a, b) => a - b)) {
    const scalars = byStep.get(step)!;
    records.push(tfRecord(eventBytes({ wallTime: scalars[0].wallTime, step, scalars })));
  }
  const out = new Uint8Array(records.reduce((n, r) => n + r.length, 0));
  let o = 0;
  for (const r of records) (out.set(r, o), (o += r.length));
  return out;
}

// ---------------------------------------------------------------------------------------------
// reading back (tests, and `export-metrics` checks what it wrote)

/** A decoded event: what `eventFile` writes. */
export interface DecodedEvent {
  wallTime: number;
  step: number;
  fileVersion?: string;
  scalars: { tag: string; value: number }[];
}

function fields(b: Uint8Array): { field: number; wire: number; value: bigint | Uint8Array }[] {
  const out: { field: number; wire: number; value: bigint | Uint8Array }[] = [];
  let i = 0;
  const varint = () => {
    let x = 0n, shift = 0n;
    for (;;) {
      if (i >= b.length) throw new Error("truncated varint");
      const c = b[i++];
      x |= BigInt(c & 0x7f) << shift;
      if (!(c & 0x80)) return x;
      shift += 7n;
    }
  };
  while (i < b.length) {
    const k = Number(varint());
    const field = k >> 3, wire = k & 7;
    if (wire === 0) out.push({ field, wire, value: varint() });
    else if (wire === 1 || wire === 5) {
      const n = wire === 1 ? 8 : 4;
      out.push({ field, wire, value: b.slice(i, i + n) });
      i += n;
    } else if (wire === 2) {
      const n = Number(varint());
      out.push({ field, wire, value: b.slice(i, i + n) });
      i += n;
    } else throw new Error(`unsupported wire type ${wire}`);
    if (i > b.length) throw new Error("truncated field");
  }
  return out;
}

/** Decode an event file, checking every record's length and data CRCs. */
export function readEventFile(bytes: Uint8Array): DecodedEvent[] {
  const out: DecodedEvent[] = [];
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let o = 0;
  while (o < bytes.length) {
    if (o + 12 > bytes.length) throw new Error(`record at ${o}: truncated header`);
    const len = Number(dv.getBigUint64(o, true));
    if (dv.getUint32(o + 8, true) !== maskedCrc32c(bytes.subarray(o, o + 8))) {
      throw new Error(`record at ${o}: length CRC mismatch`);
    }
    const data = bytes.subarray(o + 12, o + 12 + len);
    if (data.length !== len || o + 16 + len > bytes.length) {
      throw new Error(`record at ${o}: truncated data`);
    }
    if (dv.getUint32(o + 12 + len, true) !== maskedCrc32c(data)) {
      throw new Error(`record at ${o}: data CRC mismatch`);
    }
    const ev: DecodedEvent = { wallTime: 0, step: 0, scalars: [] };
    for (const f of fields(data)) {
      const raw = f.value as Uint8Array;
      if (f.field === 1 && f.wire === 1) {
        ev.wallTime = new DataView(raw.buffer, raw.byteOffset, 8).getFloat64(0, true);
      } else if (f.field === 2 && f.wire === 0) {
        ev.step = Number(BigInt.asIntN(64, f.value as bigint));
      } else if (f.field === 3 && f.wire === 2) ev.fileVersion = new TextDecoder().decode(raw);
      else if (f.field === 5 && f.wire === 2) {
        for (const v of fields(raw)) {
          if (v.field !== 1 || v.wire !== 2) continue;
          let tag = "", value = NaN;
          for (const x of fields(v.value as Uint8Array)) {
            const xb = x.value as Uint8Array;
            if (x.field === 1 && x.wire === 2) tag = new TextDecoder().decode(xb);
            if (x.field === 2 && x.wire === 5) {
              value = new DataView(xb.buffer, xb.byteOffset, 4).getFloat32(0, true);
            }
          }
          ev.scalars.push({ tag, value });
        }
      }
    }
    out.push(ev);
    o += 16 + len;
  }
  return out;
}
