import assert from "node:assert/strict";
import { join } from "node:path";
import { ArpoError } from "../src/errors.ts";
import { sha256 } from "../src/store/hash.ts";
import { atomicWrite, Store, storeDir } from "../src/store/store.ts";
import { readWhole } from "../src/store/files.ts";
import { REPO, rm, scratchStore } from "./fixtures/helpers.ts";

Deno.test("store: objects are addressed by sha256 under objects/sha256/ab/<rest>", async () => {
  const store = await scratchStore();
  try {
    const bytes = new TextEncoder().encode("hello store");
    const d = await store.putBytes(bytes);
    assert.equal(d, sha256(bytes));
    assert.equal(
      store.objectPath(d),
      join(store.root, "objects", "sha256", d.slice(0, 2), d.slice(2)),
    );
    assert.deepEqual(await store.getBytes(d), bytes);
    assert.equal(await store.putBytes(bytes), d, "same bytes, same object");
    const j = await store.putJson({ b: 1, a: [1, 2] });
    assert.equal(new TextDecoder().decode(await store.getBytes(j)), '{"a":[1,2],"b":1}');
    // nothing left in tmp/ after successful writes
    assert.deepEqual([...Deno.readDirSync(store.tmpDir)], []);
  } finally {
    await rm(join(store.root, ".."));
  }
});

Deno.test("store: putParts stores the concatenation of its parts, as putBytes does", async () => {
  const store = await scratchStore();
  try {
    const whole = new TextEncoder().encode("one two three");
    const parts = [whole.subarray(0, 4), whole.subarray(4, 4), whole.subarray(4)];
    const d = await store.putParts(parts);
    assert.equal(d, sha256(whole));
    assert.deepEqual(await store.getBytes(d), whole);
    assert.equal(await store.putBytes(whole), d);
    // A damaged object is healed by the parts, as by the bytes.
    await Deno.chmod(store.objectPath(d), 0o644);
    await Deno.writeTextFile(store.objectPath(d), "one two thr33");
    assert.equal(await store.check(d), "damaged");
    assert.equal(await store.putParts(parts), d);
    assert.equal(await store.check(d), "ok");
    assert.deepEqual([...Deno.readDirSync(store.tmpDir)], []);
  } finally {
    await rm(join(store.root, ".."));
  }
});

Deno.test("store: putFile streams a file in under its sha256; a changed file stores nothing", async () => {
  const store = await scratchStore();
  try {
    const src = join(store.root, "..", "weights.bin");
    const bytes = new Uint8Array(20 << 20).map((_, i) => (i * 31) & 0xff); // > one 8 MiB chunk
    await Deno.writeFile(src, bytes);
    const d = await store.putFile(src);
    assert.equal(d, sha256(bytes));
    assert.deepEqual(await store.getBytes(d), bytes);
    assert.equal(await store.putBytes(bytes), d);
    // The bytes no longer hash to the digest they are stored under (the file changed meanwhile).
    const wrong = sha256("something else");
    await assert.rejects(
      () => atomicWrite(store.tmpDir, store.objectPath(wrong), { copyOf: src, sha256: wrong }),
      (e) => e instanceof ArpoError && /changed while it was being stored/.test(e.message),
    );
    assert.equal(await store.check(wrong), "missing");
    assert.deepEqual([...Deno.readDirSync(store.tmpDir)], []);
    // readWhole gives Deno.readFile's bytes, an empty file included.
    assert.deepEqual(await readWhole(src), bytes);
    await Deno.writeFile(src, new Uint8Array(0));
    assert.deepEqual(await readWhole(src), new Uint8Array(0));
  } finally {
    await rm(join(store.root, ".."));
  }
});

Deno.test("store: reading a tampered object throws naming the digest and the run", async () => {
  const store = await scratchStore();
  try {
    const d = await store.putBytes(new TextEncoder().encode("original"));
    await Deno.chmod(store.objectPath(d), 0o644);
    await Deno.writeTextFile(store.objectPath(d), "tampered");
    assert.equal(await store.check(d), "damaged");
    await assert.rejects(
      () => store.getBytes(d, "run abc123, stage 'eval' output 'metrics'"),
      (e: Error) =>
        e instanceof ArpoError && e.message.includes(d) && e.message.includes("run abc123") &&
        /damaged/.test(e.message),
    );
    await assert.rejects(
      () => store.getBytes("0".repeat(64)),
      (e: Error) => e instanceof ArpoError && /missing/.test(e.message),
    );
  } finally {
    await rm(join(store.root, ".."));
  }
});

Deno.test("store: --store flag, then ARPO_STORE, then ./.arpo", () => {
  const prev = Deno.env.get("ARPO_STORE");
  try {
    Deno.env.delete("ARPO_STORE");
    assert.equal(storeDir(), join(Deno.cwd(), ".arpo"));
    Deno.env.set("ARPO_STORE", "/tmp/elsewhere");
    assert.equal(storeDir(), "/tmp/elsewhere");
    assert.equal(storeDir("/tmp/flag"), "/tmp/flag");
  } finally {
    if (prev === undefined) Deno.env.delete("ARPO_STORE");
    else Deno.env.set("ARPO_STORE", prev);
  }
});

/**
 * A child process writes a 4 MiB object and is SIGKILLed at the worst moments: halfway through
 * writing the temp file, and after the fsync but before the rename. Either way no object (partial
 * or not) is visible, and the next write of the same bytes succeeds.
 */
for (const phase of ["mid-write", "before-rename"]) {
  Deno.test(`store: a write killed ${phase} leaves no visible partial object`, async () => {
    const store = await scratchStore();
    const script = join(store.root, "..", "writer.ts");
    await Deno.writeTextFile(
      script,
      `import { Store } from ${JSON.stringify(join(REPO, "src/store/store.ts"))};
const store = new Store(${JSON.stringify(store.root)});
const bytes = new Uint8Array(4 << 20).map((_, i) => (i * 31) & 255);
const hang = () => { console.log("ready"); return new Promise<never>(() => {}); };
if (${JSON.stringify(phase)} === "mid-write") {
  const file = await Deno.open(Deno.makeTempFileSync());
  const proto = Object.getPrototypeOf(file);
  file.close();
  const write = proto.write;
  proto.write = async function (this: Deno.FsFile, p: Uint8Array) {
    await write.call(this, p.subarray(0, p.length >> 1));
    return hang();
  };
} else {
  (Deno as { rename: unknown }).rename = hang;
}
await store.putBytes(bytes);
`,
    );
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--quiet", script],
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const reader = child.stdout.getReader();
    const { value } = await reader.read();
    assert.equal(new TextDecoder().decode(value).trim(), "ready");
    child.kill("SIGKILL");
    await child.status;
    reader.releaseLock();
    await child.stdout.cancel().catch(() => {});
    try {
      const bytes = new Uint8Array(4 << 20).map((_, i) => (i * 31) & 255);
      const d = sha256(bytes);
      assert.equal(await store.has(d), false, "no object visible under its digest");
      // the only trace is a temp file in tmp/, which is never read as an object
      const files: string[] = [];
      const walk = (dir: string) => {
        try {
          for (const e of Deno.readDirSync(dir)) {
            if (e.isDirectory) walk(join(dir, e.name));
            else files.push(join(dir, e.name));
          }
        } catch {
          // objects/ may not even exist
        }
      };
      walk(join(store.root, "objects"));
      assert.deepEqual(files, []);
      assert.equal([...Deno.readDirSync(store.tmpDir)].length, 1);
      assert.equal(await store.sweepTmp(), 0, "a fresh temp file may be a live writer's");
      assert.equal(await store.sweepTmp(-1), 1, "a stale one is swept");
      assert.equal(await store.putBytes(bytes), d);
      assert.deepEqual(await store.getBytes(d), bytes);
    } finally {
      await rm(join(store.root, ".."));
    }
  });
}

Deno.test("store: concurrent writers of the same and different objects do not corrupt it", async () => {
  const store = await scratchStore();
  try {
    const items = Array.from({ length: 40 }, (_, i) => new TextEncoder().encode(`obj ${i % 10}`));
    const other = new Store(store.root); // a second handle, as another process would have
    const ds = await Promise.all(items.map((b, i) => (i % 2 ? store : other).putBytes(b)));
    for (let i = 0; i < items.length; i++) assert.deepEqual(await store.getBytes(ds[i]), items[i]);
    await Promise.all(
      Array.from({ length: 10 }, (_, i) => store.writeMeta("runs", "r", { i })),
    );
    const r = await store.readMeta<{ i: number }>("runs", "r");
    assert.ok(r && r.i >= 0 && r.i < 10);
  } finally {
    await rm(join(store.root, ".."));
  }
});
