/**
 * The model the manifest names (`policy.model`, a file or directory): its files are archived as
 * store objects and digested into the run identity; a rerun materializes them from the archive.
 */
import { dirname, join, relative, sep } from "node:path";
import { ArpoError } from "../errors.ts";
import { digestJson } from "../store/hash.ts";
import { atomicWrite, type Store } from "../store/store.ts";

/** Digest of a model's file table (relative path → object digest; "" for a single file). */
export function modelDigest(files: Record<string, string>): string {
  return digestJson({ model: files });
}

async function walk(dir: string, out: string[]) {
  const entries = [];
  for await (const e of Deno.readDir(dir)) entries.push(e);
  for (const e of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const p = join(dir, e.name);
    if (e.isDirectory) await walk(p, out);
    else if (e.isFile) out.push(p);
  }
}

/** The one-paragraph error for a `policy.model` that is not there or holds no files. */
function modelMissing(where: string, what: string): ArpoError {
  return new ArpoError(
    `${where}: policy.model: ${what} (a relative policy.model is resolved against the ` +
      `manifest's directory). Point it at a model directory in the Hugging Face layout ` +
      `(config.json, *.safetensors, tokenizer.json), e.g. \`deno task exp <manifest> --set ` +
      `policy.model=/path/to/Qwen2.5-3B-Instruct\`, or edit \`policy: { model: … }\` in the ` +
      `manifest. Nothing was run.`,
  );
}

/**
 * Fail before anything is loaded or stored when the model the manifest names is not there, so a
 * mistyped or not-yet-downloaded checkpoint costs one clear message and no store writes.
 */
export async function checkModelPath(path: string, where: string): Promise<void> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch {
    throw modelMissing(where, `there is no model at ${path}`);
  }
  if (info.isDirectory) {
    for await (const _ of Deno.readDir(path)) return;
    throw modelMissing(where, `the model directory ${path} is empty`);
  }
}

/** Archive the model at `path`; `where` (file:line:col) prefixes errors. */
export async function archiveModel(
  store: Store,
  path: string,
  where: string,
): Promise<Record<string, string>> {
  await checkModelPath(path, where);
  const info = await Deno.stat(path);
  if (info.isFile) return { "": await store.putFile(path) };
  const paths: string[] = [];
  await walk(path, paths);
  if (!paths.length) throw modelMissing(where, `the model directory ${path} holds no files`);
  const files: Record<string, string> = {};
  for (const p of paths) {
    files[relative(path, p).split(sep).join("/")] = await store.putFile(p);
  }
  return files;
}

/** Write an archived model into <store>/models/<digest>/ and return the model path there. */
export async function materializeModel(
  store: Store,
  files: Record<string, string>,
): Promise<string> {
  const dir = join(store.root, "models", modelDigest(files));
  const single = Object.keys(files).length === 1 && "" in files;
  const target = single ? join(dir, "model") : dir;
  const marker = `${dir}.complete`;
  try {
    await Deno.stat(marker);
    return target;
  } catch {
    // not yet materialized
  }
  for (const [p, d] of Object.entries(files)) {
    const out = p === "" ? target : join(dir, ...p.split("/"));
    await Deno.mkdir(dirname(out), { recursive: true });
    await atomicWrite(store.tmpDir, out, await store.getBytes(d, `model file ${p || "(model)"}`));
  }
  await Deno.writeTextFile(marker, "");
  return target;
}
