/**
 * AdamW hyperparameters and learning-rate schedules, computed in TS per step and fed to the
 * training graph as scalars (a schedule never rebuilds the graph).
 */

export interface AdamWConfig {
  beta1: number;
  beta2: number;
  eps: number;
  /** Decoupled weight decay (applied to every parameter, as torch.optim.AdamW's default). */
  weightDecay: number;
  /** Global grad-norm clip; 0 disables. */
  maxGradNorm: number;
}

/** ARPO.md §4 reference optimizer settings (lr comes from the schedule). */
export const DEFAULT_ADAMW: AdamWConfig = {
  beta1: 0.9,
  beta2: 0.999,
  eps: 1e-8,
  weightDecay: 0.01,
  maxGradNorm: 1.0,
};

export type LrSchedule =
  | { kind: "constant"; lr: number; warmupSteps?: number }
  | {
    kind: "cosine";
    lr: number;
    totalSteps: number;
    warmupSteps?: number;
    /** Final lr as a fraction of lr (default 0). */
    minRatio?: number;
  };

/** Learning rate at optimizer step `step` (0-based). Linear warm-up from lr/(w) to lr. */
export function lrAt(s: LrSchedule, step: number): number {
  const w = s.warmupSteps ?? 0;
  if (step < w) return (s.lr * (step + 1)) / w;
  if (s.kind === "constant") return s.lr;
  const span = Math.max(1, s.totalSteps - w);
  const p = Math.min(1, (step - w) / span);
  const min = s.minRatio ?? 0;
  return s.lr * (min + (1 - min) * 0.5 * (1 + Math.cos(Math.PI * p)));
}

/** The ADAM_INPUTS scalars for optimizer step t (1-based) at learning rate lr. */
export function adamScalars(c: AdamWConfig, lr: number, t: number): Record<string, number> {
  return {
    adam_decay: 1 - lr * c.weightDecay,
    adam_step_size: lr / (1 - c.beta1 ** t),
    adam_inv_sqrt_bc2: 1 / Math.sqrt(1 - c.beta2 ** t),
    adam_beta1: c.beta1,
    adam_beta2: c.beta2,
    adam_eps: c.eps,
    max_grad_norm: c.maxGradNorm > 0 ? c.maxGradNorm : 3.0e38,
  };
}
