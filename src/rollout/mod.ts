/**
 * The rollout room's public surface for stages and the trainer: configure (config.ts), render
 * prompts (prompt.ts), roll out a batch of tasks (agent_loop.ts), score (rewards.ts), store
 * artefacts (artifacts.ts) and compute metrics (metrics.ts).
 */
export {
  type QuestionRollout,
  type RolloutOptions,
  type RolloutRequest,
  type RolloutResult,
  type RolloutStats,
  type RolloutTimings,
  runRollout,
  toolCallSite,
} from "./agent_loop.ts";
export {
  independentRollouts,
  parseRolloutConfig,
  type RolloutConfig,
  rolloutConfig,
  type RolloutSettings,
  rolloutSettingsSchema,
  type SamplingSettings,
  samplingSettingsSchema,
} from "./config.ts";
export { renderPrompt } from "./prompt.ts";
export { responseText, rewardSample, scoreRollout } from "./rewards.ts";
export {
  type ArtifactStore,
  parseTreeLines,
  type RolloutIndex,
  type StoredRollout,
  storeRollout,
  treeLines,
  type TreeRecord,
} from "./artifacts.ts";
export {
  type EntropyCurve,
  metricsJson,
  type RolloutMetrics,
  rolloutMetrics,
  summarize,
} from "./metrics.ts";
export {
  checkTree,
  type FlatTrajectory,
  type ForkNode,
  RolloutTree,
  type Segment,
  type ToolCallNode,
  type TrajectoryNode,
} from "./tree.ts";
