/**
 * A minimal POSIX ustar writer and reader for run archives: regular files only, deterministic
 * headers (mode 0644, mtime 0, no owner names), so exporting the same run twice gives the same
 * bytes. No dependency: the format is 512-byte headers followed by 512-byte-padded contents. A
 * file of 8 GiB or more (past ustar's 11 octal digits) gets a PAX extended header (`x`) with its
 * `size`, as GNU and BSD tar read it. Both in memory (`writeTar`, `readTar`) and streaming
 * (`TarWriter`, `tarEntries`: one entry's contents at a time, so memory does not grow with size).
 */
import { concatBytes } from "./bytes.ts";

export interface TarEntry {
  name: string;
  data: Uint8Array;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

function putString(h: Uint8Array, off: number, len: number, s: string) {
  const b = enc.encode(s);
  if (b.length > len) throw new Error(`tar: '${s}' does not fit in ${len} bytes`);
  h.set(b, off);
}

function putOctal(h: Uint8Array, off: number, len: number, n: number) {
  putString(h, off, len, n.toString(8).padStart(len - 1, "0") + "\0");
}

/** The largest size ustar's 12-byte octal field holds. */
const USTAR_MAX = 8 ** 11 - 1;

function header(name: string, size: number, type = 0x30): Uint8Array {
  const h = new Uint8Array(512);
  let prefix = "";
  let base = name;
  if (enc.encode(name).length > 100) {
    const cut = name.lastIndexOf("/", 155);
    if (cut <= 0 || enc.encode(name.slice(cut + 1)).length > 100) {
      throw new Error(`tar: path too long for ustar: ${name}`);
    }
    prefix = name.slice(0, cut);
    base = name.slice(cut + 1);
  }
  putString(h, 0, 100, base);
  putOctal(h, 100, 8, 0o644);
  putOctal(h, 108, 8, 0);
  putOctal(h, 116, 8, 0);
  putOctal(h, 124, 12, size > USTAR_MAX ? 0 : size); // past the field: the PAX size holds it
  putOctal(h, 136, 12, 0);
  h.fill(0x20, 148, 156); // checksum field counts as spaces while summing
  h[156] = type; // '0': regular file, 'x': PAX extended header
  putString(h, 257, 6, "ustar\0");
  putString(h, 263, 2, "00");
  putString(h, 345, 155, prefix);
  let sum = 0;
  for (const b of h) sum += b;
  putString(h, 148, 8, sum.toString(8).padStart(6, "0") + "\0 ");
  return h;
}

/** A PAX record "LEN key=value\n", LEN counting itself. */
function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let n = body.length + 1;
  while (String(n).length + body.length !== n) n = String(n).length + body.length;
  return `${n}${body}`;
}

/** The header block(s) of one regular file: a PAX `x` block with its size first when it needs one. */
export function entryHeader(name: string, size: number): Uint8Array {
  if (size <= USTAR_MAX) return header(name, size);
  const pax = enc.encode(paxRecord("size", String(size)));
  const padded = Math.ceil(pax.length / 512) * 512;
  const out = new Uint8Array(512 + padded + 512);
  out.set(header("PaxHeader", pax.length, 0x78), 0);
  out.set(pax, 512);
  out.set(header(name, size), 512 + padded);
  return out;
}

/** Zero bytes that pad `size` bytes of contents to a whole block. */
export function padding(size: number): Uint8Array {
  return new Uint8Array((512 - (size % 512)) % 512);
}

/** Serialize entries (in the given order) as a ustar archive. */
export function writeTar(entries: TarEntry[]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const e of entries) {
    parts.push(entryHeader(e.name, e.data.length), e.data, padding(e.data.length));
  }
  parts.push(new Uint8Array(1024));
  return concatBytes(parts);
}

/**
 * Writes an archive entry by entry to an open file; an entry's contents come as chunks (read
 * from disk as they are written). `finish` adds the end-of-archive blocks.
 */
export class TarWriter {
  constructor(readonly file: Deno.FsFile) {}

  async #write(b: Uint8Array): Promise<void> {
    for (let off = 0; off < b.length;) off += await this.file.write(b.subarray(off));
  }

  /** One regular file of exactly `size` bytes, taken from `chunks`. */
  async add(name: string, size: number, chunks: AsyncIterable<Uint8Array>): Promise<void> {
    await this.#write(entryHeader(name, size));
    let n = 0;
    for await (const c of chunks) {
      n += c.length;
      if (n > size) break;
      await this.#write(c);
    }
    if (n !== size) {
      throw new Error(`tar: entry '${name}' changed size while written (${n} ≠ ${size})`);
    }
    await this.#write(padding(size));
  }

  async finish(): Promise<void> {
    await this.#write(new Uint8Array(1024));
  }
}

function cString(b: Uint8Array): string {
  const z = b.indexOf(0);
  return dec.decode(z < 0 ? b : b.subarray(0, z));
}

function octal(b: Uint8Array): number {
  const s = cString(b).trim();
  if (!/^[0-7]*$/.test(s)) throw new Error(`bad octal field '${s}'`);
  return s ? parseInt(s, 8) : 0;
}

interface ParsedHeader {
  name: string;
  size: number;
  type: number;
}

/** One 512-byte header block, checksum checked; null for an end-of-archive (zero) block. */
function parseHeader(h: Uint8Array, off: number): ParsedHeader | null {
  if (h.every((b) => b === 0)) return null;
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i];
  if (octal(h.subarray(148, 156)) !== sum) {
    throw new Error(`tar header checksum mismatch at byte ${off}`);
  }
  const prefix = cString(h.subarray(345, 500));
  const name = (prefix ? prefix + "/" : "") + cString(h.subarray(0, 100));
  return { name, size: octal(h.subarray(124, 136)), type: h[156] };
}

/** The `size` of a PAX extended header's records, if it gives one. */
function paxSize(records: Uint8Array, off: number): number | undefined {
  let size: number | undefined;
  for (const line of dec.decode(records).split("\n")) {
    const m = /^\d+ ([^=]+)=(.*)$/.exec(line);
    if (m && m[1] === "size") {
      if (!/^\d+$/.test(m[2])) throw new Error(`bad PAX size '${m[2]}' at byte ${off}`);
      size = Number(m[2]);
    }
  }
  return size;
}

/** Parse a tar archive's regular files. Throws Error with the offset on malformed input. */
export function readTar(bytes: Uint8Array): TarEntry[] {
  const out: TarEntry[] = [];
  let off = 0;
  let nextSize: number | undefined;
  while (off + 512 <= bytes.length) {
    const h = parseHeader(bytes.subarray(off, off + 512), off);
    if (!h) break;
    off += 512;
    const size = h.type === 0x78 ? h.size : nextSize ?? h.size;
    if (off + size > bytes.length) throw new Error(`tar entry '${h.name}' is truncated`);
    if (h.type === 0x78) nextSize = paxSize(bytes.subarray(off, off + size), off);
    else {
      nextSize = undefined;
      if (h.type === 0x30 || h.type === 0) {
        out.push({ name: h.name, data: bytes.slice(off, off + size) });
      }
    }
    off += Math.ceil(size / 512) * 512;
  }
  return out;
}

/** One regular file of a streamed archive: its contents are read once, as chunks, in order. */
export interface TarStreamEntry {
  name: string;
  size: number;
  chunks(): AsyncIterable<Uint8Array>;
}

const CHUNK = 1 << 20;

/**
 * The regular files of the archive in an open file, one at a time: memory stays at one chunk
 * whatever the sizes. Contents an entry's consumer does not read are skipped. Throws Error with
 * the byte offset on malformed input.
 */
export async function* tarEntries(file: Deno.FsFile): AsyncGenerator<TarStreamEntry> {
  let off = 0;
  const readExactly = async (buf: Uint8Array, what: string) => {
    for (let got = 0; got < buf.length;) {
      const n = await file.read(buf.subarray(got));
      if (n === null) throw new Error(`tar ${what} is truncated at byte ${off + got}`);
      got += n;
    }
    off += buf.length;
  };
  let nextSize: number | undefined;
  const block = new Uint8Array(512);
  while (true) {
    const first = await file.read(block);
    if (first === null) return; // no end blocks: tolerated, as readTar does
    for (let got = first; got < 512;) {
      const r = await file.read(block.subarray(got));
      if (r === null) throw new Error(`tar header is truncated at byte ${off + got}`);
      got += r;
    }
    const h = parseHeader(block, off);
    off += 512;
    if (!h) return;
    const size = h.type === 0x78 ? h.size : nextSize ?? h.size;
    const pad = (512 - (size % 512)) % 512;
    if (h.type === 0x78) {
      const rec = new Uint8Array(size);
      await readExactly(rec, `PAX header '${h.name}'`);
      nextSize = paxSize(rec, off);
      await readExactly(new Uint8Array(pad), "padding");
      continue;
    }
    nextSize = undefined;
    let left = size;
    const regular = h.type === 0x30 || h.type === 0;
    const chunks = async function* (): AsyncGenerator<Uint8Array> {
      while (left > 0) {
        const buf = new Uint8Array(Math.min(CHUNK, left));
        await readExactly(buf, `entry '${h!.name}'`);
        left -= buf.length;
        yield buf;
      }
    };
    if (regular) yield { name: h.name, size, chunks };
    for await (const _ of chunks()) { /* skip what was not read */ }
    await readExactly(new Uint8Array(pad), "padding");
  }
}
