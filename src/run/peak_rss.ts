/**
 * Peak resident memory of this process per stage, for the run's timings (outside the identity).
 *
 * Linux keeps the peak (VmHWM in /proc/self/status) and resets it to the current RSS when "5" is
 * written to /proc/self/clear_refs, so a stage's peak is the HWM read at its end after a reset at
 * its start. Where either file is missing (not Linux) the peak is unknown and nothing is recorded.
 */

/** Reset the process's peak RSS to its current RSS; false where the platform cannot. */
export function resetPeakRss(): boolean {
  try {
    Deno.writeTextFileSync("/proc/self/clear_refs", "5");
    return true;
  } catch {
    return false;
  }
}

/** Peak RSS (MB) since the last reset (or process start), or undefined where unknown. */
export function peakRssMb(): number | undefined {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(Deno.readTextFileSync("/proc/self/status"));
    return m ? Math.round(Number(m[1]) / 1024) : undefined;
  } catch {
    return undefined;
  }
}
