// Archives that stream (issue 15): PAX sizes past ustar's 8 GiB, entries read one chunk at a time,
// export/import of a run whose object is read from and written to disk, digests checked while
// reading, and (ARPO_BIG_TESTS=1, disk permitting) a 3 GiB sparse object with RSS staying flat.
import assert from "node:assert/strict";
import { join } from "node:path";
import { exportRun, importArchive } from "../src/store/archive.ts";
import { RECORD_FORMAT, runIdOf, type RunRecord, writeRecord } from "../src/store/records.ts";
import { Store } from "../src/store/store.ts";
import { entryHeader, readTar, tarEntries, TarWriter, writeTar } from "../src/store/tar.ts";
import { sha256 } from "../src/store/hash.ts";

Deno.test("a file past ustar's 8 GiB gets a PAX size header that readers honour", async () => {
  const big = 8 * 2 ** 30 + 5;
  const h = entryHeader("objects/x", big);
  assert.equal(h.length, 3 * 512); // x header, its records, the file header
  assert.equal(String.fromCharCode(h[156]), "x");
  assert.match(new TextDecoder().decode(h.subarray(512, 1024)), /^\d+ size=8589934597\n/);
  // The streaming reader takes the size from the PAX record (a truncated body is reported).
  const tmp = await Deno.makeTempFile();
  try {
    await Deno.writeFile(tmp, h);
    const f = await Deno.open(tmp);
    try {
      await assert.rejects(async () => {
        for await (const e of tarEntries(f)) {
          assert.equal(e.size, big);
          for await (const _ of e.chunks()) { /* read */ }
        }
      }, /truncated/);
    } finally {
      f.close();
    }
  } finally {
    await Deno.remove(tmp);
  }
  // Small entries keep the plain ustar bytes (archives exported before stay byte-identical).
  const entries = [{ name: "runs/a.json", data: new Uint8Array([1, 2, 3]) }];
  assert.equal(writeTar(entries).length, 512 + 512 + 1024);
  assert.deepEqual(readTar(writeTar(entries)), entries);
});

Deno.test("TarWriter and tarEntries stream entries and agree with writeTar", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const data = new Uint8Array(3 * 2 ** 20 + 7).map((_, i) => i % 251);
    const path = join(dir, "a.tar");
    const f = await Deno.open(path, { write: true, create: true });
    const w = new TarWriter(f);
    await w.add(
      "x/one",
      data.length,
      (async function* () {
        yield data.subarray(0, 1000);
        yield data.subarray(1000);
      })(),
    );
    await w.add("x/two", 0, (async function* () {})());
    await w.finish();
    f.close();
    const bytes = await Deno.readFile(path);
    assert.deepEqual(
      bytes,
      writeTar([{ name: "x/one", data }, { name: "x/two", data: new Uint8Array() }]),
    );
    const r = await Deno.open(path);
    const seen: [string, number, string][] = [];
    for await (const e of tarEntries(r)) {
      const parts: Uint8Array[] = [];
      for await (const c of e.chunks()) parts.push(c);
      assert.ok(parts.every((c) => c.length <= 2 ** 20), "one chunk at a time");
      const all = new Uint8Array(parts.reduce((a, c) => a + c.length, 0));
      let off = 0;
      for (const c of parts) all.set(c, off), off += c.length;
      seen.push([e.name, e.size, sha256(all)]);
    }
    r.close();
    assert.deepEqual(seen, [["x/one", data.length, sha256(data)], [
      "x/two",
      0,
      sha256(new Uint8Array()),
    ]]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** A store with one run whose model file is the object `digest`. */
async function storeWithObject(
  root: string,
  digest: string,
): Promise<{ store: Store; id: string }> {
  const store = new Store(root);
  const identity = {
    manifest: { name: "stream" },
    plugins: {},
    data: {},
    model: digest,
    runtime: {
      "arpo-lab": "0",
      deno: "0",
      v8: "0",
      typescript: "0",
      "onnxruntime-node": "0",
    },
  };
  const id = runIdOf(identity);
  const rec: RunRecord = {
    format: RECORD_FORMAT,
    id,
    identity,
    sources: {},
    modelFiles: { "model.safetensors": digest },
    name: "stream",
    stages: {},
    status: "complete",
    baseDir: "/tmp",
    manifestPath: "/tmp/stream.yaml",
    timings: {},
    host: {},
  } as RunRecord;
  await writeRecord(store, rec);
  return { store, id };
}

async function roundTrip(objectBytes: (path: string) => Promise<string>) {
  const dir = await Deno.makeTempDir();
  try {
    const src = new Store(join(dir, "a"));
    await Deno.mkdir(join(dir, "a"), { recursive: true });
    const staged = join(dir, "staged");
    const digest = await objectBytes(staged);
    await Deno.mkdir(join(src.objectPath(digest), ".."), { recursive: true });
    await Deno.rename(staged, src.objectPath(digest));
    const { store, id } = await storeWithObject(join(dir, "a"), digest);
    return { dir, store, id, digest };
  } catch (e) {
    await Deno.remove(dir, { recursive: true });
    throw e;
  }
}

Deno.test("export/import stream a run's objects; a damaged entry imports nothing", async () => {
  const data = new Uint8Array(2 * 2 ** 20 + 3).map((_, i) => (i * 7) % 256);
  const { dir, store, id, digest } = await roundTrip(async (p) => {
    await Deno.writeFile(p, data);
    return sha256(data);
  });
  try {
    const tar = join(dir, "run.tar");
    assert.equal(await exportRun(store, id, tar), 1);
    const dest = new Store(join(dir, "b"));
    assert.deepEqual(await importArchive(dest, tar), [id]);
    assert.deepEqual(await Deno.readFile(dest.objectPath(digest)), data);
    // Flip one byte inside the object's contents: refused, nothing added to a fresh store.
    const bytes = await Deno.readFile(tar);
    const at = bytes.length - 1024 - 512 - 10; // inside the last entry's padded contents
    bytes[at] ^= 1;
    await Deno.writeFile(tar, bytes);
    const fresh = new Store(join(dir, "c"));
    await assert.rejects(() => importArchive(fresh, tar), /does not match its digest/);
    await assert.rejects(() => Deno.stat(fresh.objectPath(digest)), Deno.errors.NotFound);
    const left = [...Deno.readDirSync(fresh.tmpDir)];
    assert.deepEqual(left, [], "no temp files left behind");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Free bytes of the file system holding `path`, from `df`. */
async function freeBytes(path: string): Promise<number> {
  const out = await new Deno.Command("df", { args: ["-B1", "--output=avail", path] }).output();
  return Number(new TextDecoder().decode(out.stdout).trim().split("\n").pop());
}

function rssKb(): number {
  return Number(/VmRSS:\s+(\d+)/.exec(Deno.readTextFileSync("/proc/self/status"))![1]);
}

const BIG = 3 * 2 ** 30;
Deno.test({
  name: "a 3 GiB object exports and imports with flat memory (ARPO_BIG_TESTS=1, ~10 GB disk)",
  ignore: Deno.env.get("ARPO_BIG_TESTS") !== "1",
  async fn() {
    const tmpRoot = await Deno.makeTempDir();
    if ((await freeBytes(tmpRoot)) < 3.5 * BIG) {
      console.log(`skipped: less than ${3.5 * BIG} bytes free in ${tmpRoot}`);
      await Deno.remove(tmpRoot, { recursive: true });
      return;
    }
    await Deno.remove(tmpRoot, { recursive: true });
    // A sparse file: zeros except a marker, so the test writes little but reads every byte.
    const { dir, store, id, digest } = await roundTrip(async (p) => {
      const f = await Deno.open(p, { write: true, create: true });
      await f.truncate(BIG);
      await f.seek(BIG - 4, Deno.SeekMode.Start);
      await f.write(new Uint8Array([1, 2, 3, 4]));
      f.close();
      const h = (await import("node:crypto")).createHash("sha256");
      const r = await Deno.open(p);
      const buf = new Uint8Array(1 << 22);
      for (let n; (n = await r.read(buf)) !== null;) h.update(buf.subarray(0, n));
      r.close();
      return h.digest("hex");
    });
    try {
      const before = rssKb();
      const tar = join(dir, "run.tar");
      await exportRun(store, id, tar);
      const dest = new Store(join(dir, "b"));
      assert.deepEqual(await importArchive(dest, tar), [id]);
      const grew = (rssKb() - before) * 1024;
      assert.ok(grew < 256 * 2 ** 20, `RSS grew by ${grew} bytes for a ${BIG}-byte object`);
      assert.equal((await Deno.stat(dest.objectPath(digest))).size, BIG);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
