/**
 * `deno task arpo report <run> [<run> …] [-o FILE]`: the self-contained HTML report of a run, or
 * of several runs overlaid for comparison; `report <sweep>`: a sweep's seeds overlaid, training
 * curves with a min–max band over seeds and the mean, and the aggregate table. `--data FILE.json` renders a ReportData JSON (one
 * object or a list) instead of reading run records, e.g. data written by a stage under test.
 */
import { resolve } from "node:path";
import { ArpoError } from "../../errors.ts";
import { readSweep } from "../../store/sweeps.ts";
import { sweepAggregate } from "../../run/sweep.ts";
import { parseReportData } from "../../report/build.ts";
import type { ReportData } from "../../report/data.ts";
import { renderReport } from "../../report/render.ts";
import { writeHtml, writeRunReport, writeSweepReport } from "../../report/write.ts";
import { optionDefaults } from "../../manifest/option_table.ts";
import { loadExtensions } from "../../run/builtin.ts";
import { openStore, parse } from "./_common.ts";
import { resolveTarget } from "./_sweeps.ts";

export const summary = "write the HTML report of a run, of several runs compared, or of a sweep";

const USAGE = "deno task arpo report <run-id-prefix> [<run-id-prefix> …] [-o FILE] [--store DIR] " +
  "[--trees N]\n       deno task arpo report <sweep-id-prefix> [-o FILE] [--store DIR] [--trees N]" +
  "\n       deno task arpo report --data FILE.json [--data FILE2.json …] -o FILE";

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parse("report", USAGE, args, {
    out: {
      type: "string",
      short: "o",
      arg: "FILE",
      help: "where to write the HTML (default: <store>/reports/<id>.html)",
    },
    data: { type: "string", multiple: true, arg: "FILE.json", help: "render a ReportData JSON" },
    trees: { type: "string", arg: "N", help: "rollout trees drawn per batch" },
  });
  const files = (values.data ?? []) as string[];
  const out = typeof values.out === "string" ? resolve(values.out) : undefined;
  if (files.length) {
    if (positionals.length) {
      throw new ArpoError(
        `report: give run ids or --data files, not both\nusage: ${USAGE}`,
        { exitCode: 2 },
      );
    }
    if (!out) throw new ArpoError(`report: --data needs -o FILE\nusage: ${USAGE}`, { exitCode: 2 });
    const data: ReportData[] = [];
    for (const f of files) {
      let text: string;
      try {
        text = await Deno.readTextFile(f);
      } catch (e) {
        throw new ArpoError(`report: cannot read --data ${f}: ${(e as Error).message}`);
      }
      data.push(...parseReportData(text, f));
    }
    await writeHtml(out, renderReport(data));
    console.log(out);
    return 0;
  }
  if (positionals.length === 0) {
    throw new ArpoError(`report: expected at least one run or sweep id\nusage: ${USAGE}`, {
      exitCode: 2,
    });
  }
  let treesPerStage: number | undefined;
  if (values.trees !== undefined) {
    treesPerStage = Number(values.trees);
    if (!Number.isInteger(treesPerStage) || treesPerStage < 0) {
      throw new ArpoError(`--trees: expected a non-negative integer, found '${values.trees}'`, {
        exitCode: 2,
      });
    }
  }
  const store = openStore(values.store);
  const targets = [];
  for (const p of positionals) targets.push(await resolveTarget(store, p));
  const sweeps = targets.filter((t) => t.kind === "sweep");
  if (sweeps.length) {
    if (targets.length > 1) {
      throw new ArpoError(
        `report: a sweep's report shows all its seeds; give one sweep id, or run ids only ` +
          `(found ${sweeps.length} sweep(s) among ${targets.length} ids)\nusage: ${USAGE}`,
        { exitCode: 2 },
      );
    }
    const sweep = await readSweep(store, sweeps[0].id);
    if (!sweep.aggregate && sweep.runs.some((r) => r.status === "complete")) {
      sweep.aggregate = await sweepAggregate(store, sweep);
    }
    const { path } = await writeSweepReport(store, sweep, {
      out,
      build: { treesPerStage, defaults: optionDefaults((await loadExtensions()).stages) },
    });
    console.log(path);
    return 0;
  }
  const ids = targets.map((t) => t.id);
  const { path } = await writeRunReport(store, ids, {
    out,
    build: { treesPerStage, defaults: optionDefaults((await loadExtensions()).stages) },
  });
  console.log(path);
  return 0;
}
