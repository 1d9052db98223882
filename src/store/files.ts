/** Whole files read and hashed without extra copies: model weights and checkpoints run to GBs. */
import { createHash } from "node:crypto";

const CHUNK = 8 << 20;

/**
 * A file's bytes in one buffer of exactly its size. (Deno.readFile held the file twice at its
 * peak and took twice as long on a 2 GB safetensors file.)
 *
 * @example
 * ```ts
 * import { readWhole } from "./files.ts";
 * const tmp = await Deno.makeTempFile();
 * await Deno.writeFile(tmp, new Uint8Array([1, 2, 3]));
 * console.log(await readWhole(tmp)); // Uint8Array(3) [ 1, 2, 3 ]
 * ```
 */
export async function readWhole(path: string): Promise<Uint8Array<ArrayBuffer>> {
  const f = await Deno.open(path, { read: true });
  try {
    const size = (await f.stat()).size;
    const out = new Uint8Array(size);
    let off = 0;
    while (off < size) {
      const n = await f.read(out.subarray(off, Math.min(size, off + CHUNK)));
      if (n === null) break;
      off += n;
    }
    // A file that shrank or grew while being read is not what stat said: read what is there.
    if (off < size || (await f.read(new Uint8Array(1))) !== null) return await Deno.readFile(path);
    return out;
  } finally {
    f.close();
  }
}

/**
 * A file's bytes as chunks of up to 1 MiB (each its own buffer, so a consumer may keep them),
 * fed to `hash` as they are read.
 *
 * @example
 * ```ts
 * import { createHash } from "node:crypto";
 * import { fileChunks } from "./files.ts";
 * const tmp = await Deno.makeTempFile();
 * await Deno.writeTextFile(tmp, "abc");
 * const f = await Deno.open(tmp), h = createHash("sha256");
 * for await (const c of fileChunks(f, h)) console.log(c.length); // 3
 * f.close();
 * ```
 */
export async function* fileChunks(
  f: Deno.FsFile,
  hash: ReturnType<typeof createHash>,
): AsyncGenerator<Uint8Array> {
  while (true) {
    const buf = new Uint8Array(1 << 20);
    const n = await f.read(buf);
    if (n === null) return;
    const c = buf.subarray(0, n);
    hash.update(c);
    yield c;
  }
}

/**
 * sha256 (hex) of a file, read a chunk at a time.
 *
 * @example
 * ```ts
 * import { hashFile } from "./files.ts";
 * const tmp = await Deno.makeTempFile();
 * await Deno.writeTextFile(tmp, "abc");
 * console.log(await hashFile(tmp)); // ba7816bf…
 * ```
 */
export async function hashFile(path: string): Promise<string> {
  const h = createHash("sha256");
  const f = await Deno.open(path, { read: true });
  try {
    for await (const _ of fileChunks(f, h)) { /* hashing */ }
  } finally {
    f.close();
  }
  return h.digest("hex");
}
