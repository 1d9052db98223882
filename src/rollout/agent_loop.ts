/**
 * The tool-calling agent loop with ARPO branching (ARPO.md §1–§2; the `random` control branches
 * the same way with a fixed probability), for a batch of questions.
 *
 * The loop runs in rounds. In each round every active trajectory of every question generates one
 * segment, all in ONE `Policy.generate` call: until a tool's closing tag, end-of-sequence, or the
 * response-length limit. Then the tool calls of all trajectories that stopped at a tag run
 * concurrently; their results are appended (` <result>\n…\n</result>`, loss-masked, protocol tags
 * in the output neutralized: `frameResult`); branch decisions are taken; questions whose paths
 * have all ended get a fresh filler trajectory. A call that failed for infrastructure reasons
 * (ToolCallTiming.infrastructureFailure) ends its trajectory, marked (`infrastructure`).
 *
 * Determinism: a question's rollout depends only on its own trajectories. Each trajectory samples
 * from its own stream keyed by (root, "q", task id, "t", path); each branch decision draws from
 * (root, "q", task id, "fork", path, call). Requests carry per-trajectory limits, tool results are
 * applied in trajectory order after all calls finished, and every list is walked in a fixed order,
 * so the tree is the same whatever other questions share the batch and in whatever order tool
 * calls complete.
 *
 * AEPO (aepo.ts) uses the same machinery: its pre-monitoring runs a root generation and a probe
 * trajectory per question first (as independent sub-rollouts under the task id
 * `<id>#premonitor-root` / `<id>#premonitor-probe`, so their streams and tool-call sites are their
 * own) and sets the question's number of whole trajectories; its decisions add the
 * consecutive-branch penalty.
 *
 * Paths: initial and filler trajectories are "0", "1", … (fillers continue after N); a child of
 * trajectory p created at its call t is `${p}/${t}.${z}`.
 */
import { ArpoError, describeError } from "../errors.ts";
import type { Task } from "../plugin/contracts.ts";
import type { GeneratedToken, GenerateResult, Policy, SeqId } from "../policy/types.ts";
import type { Stream } from "../rng.ts";
import type { ToolCallOutcome, ToolCallTiming, ToolRuntime } from "../tools/types.ts";
import {
  branchProbability,
  decideBranch,
  type EntropyDivisor,
  entropyDivisor,
  leadingEntropies,
  paperDeltaH,
  referenceSegmentEntropy,
} from "./arpo.ts";
import { decideAepoBranch, meanToolEntropy, preMonitorInitial } from "./aepo.ts";
import type { BranchOutcome } from "./arpo.ts";
import { frameResult } from "../eval/protocol.ts";
import type { RolloutConfig } from "./config.ts";
import {
  type EndReason,
  RolloutTree,
  type Segment,
  type ToolCallNode,
  type TrajectoryKind,
  type TrajectoryNode,
} from "./tree.ts";

/** One question to roll out. */
export interface RolloutRequest {
  task: Task;
  /** The rendered prompt (see prompt.ts `renderPrompt`). */
  promptTokens: readonly number[];
}

export interface RolloutOptions {
  policy: Policy;
  tools: ToolRuntime;
  config: RolloutConfig;
  /** Root stream of this stage and step, e.g. `stream(seed, stageName, step)`. */
  rng: Stream;
  /** Called after every round (progress display). */
  onRound?: (info: { round: number; active: number; finished: number }) => void;
}

/** Counts that describe the work done (not part of any hashed artefact). */
export interface RolloutStats {
  rounds: number;
  generateCalls: number;
  /** Tokens sampled by the policy. */
  generatedTokens: number;
  /** Policy.stats.tokensForwarded during this rollout. */
  tokensForwarded: number;
  /** Tokens a run without prefix reuse would forward: each trajectory from its start. */
  scratchTokens: number;
  toolCalls: number;
}

/** Wall-clock measurements: outside identity, never hashed. */
export interface RolloutTimings {
  totalMs: number;
  generateMs: number;
  toolMs: number;
  bookkeepingMs: number;
  /**
   * One timing per tool call, in (question, tool-call id) order, naming the call by its question
   * (request index) and tree id: whether the result was live, cached or replayed, the attempts
   * and the wall time (kept here, outside the hashed trees, so a warm cache or a replay gives the
   * same tree bytes).
   */
  toolCalls: (Omit<ToolCallTiming, "site"> & { question: number; toolCall: number; tag: string })[];
}

export interface QuestionRollout {
  task: Task;
  tree: RolloutTree;
}

export interface RolloutResult {
  questions: QuestionRollout[];
  stats: RolloutStats;
  timings: RolloutTimings;
}

interface PaperProbe {
  /** Fork of the parent taken right after the result (child 0's sequence), or null (no budget). */
  snapshot: SeqId | null;
  toolCall: ToolCallNode;
  result: Segment;
}

interface Traj {
  node: TrajectoryNode;
  q: Question;
  seq: SeqId | null;
  active: boolean;
  /** Executed tool calls plus empty ones (the reference counts both against the cap). */
  calls: number;
  hInitPaper: number[] | null;
  hInitRef: number | null;
  probe: PaperProbe | null;
  /** AEPO, `penalty_scope: path`: tool calls in a row, ending at the last one, that branched. */
  streak: number;
}

interface Question {
  index: number;
  task: Task;
  tree: RolloutTree;
  trajs: Traj[];
  fillers: number;
  root: Stream;
  /** N: whole trajectories from the prompt (AEPO pre-monitoring sets it per question). */
  initial: number;
  /** AEPO, `penalty_scope: prompt`: trajectories added before this round's decisions. */
  kPrompt: number;
}

interface PendingCall {
  traj: Traj;
  tag: string;
  input: string;
  seg: Segment;
  genTokens: readonly GeneratedToken[];
  /** The call, when it was started while the round's generate was still running. */
  outcome?: Promise<ToolCallOutcome>;
}

/** What a trajectory's finished segment leads to (decided by `planSegment`). */
type SegmentPlan =
  | { kind: "eos" }
  | { kind: "length" }
  | { kind: "tool_cap" }
  /** A tool call; an empty `input` ends the trajectory (`empty_call`) and counts as a call. */
  | { kind: "call"; tag: string; input: string };

/**
 * The site the engine names when it calls a tool (ToolCallOptions.site): the question, the
 * calling trajectory's key path and the call's 1-based index along it (ToolCallNode.call).
 */
export function toolCallSite(taskId: string, path: string, call: number): string {
  return JSON.stringify([taskId, path, call]);
}

/** Roll out every request; returns one tree per question, in request order. */
export async function runRollout(
  requests: readonly RolloutRequest[],
  opts: RolloutOptions,
): Promise<RolloutResult> {
  return await new Engine(opts).run(requests);
}

class Engine {
  readonly policy: Policy;
  readonly tools: ToolRuntime;
  readonly cfg: RolloutConfig;
  readonly stopStrings: string[];
  readonly norm: EntropyDivisor;
  readonly eosId: number;
  readonly timings: RolloutTimings = {
    totalMs: 0,
    generateMs: 0,
    toolMs: 0,
    bookkeepingMs: 0,
    toolCalls: [],
  };
  readonly stats: RolloutStats = {
    rounds: 0,
    generateCalls: 0,
    generatedTokens: 0,
    tokensForwarded: 0,
    scratchTokens: 0,
    toolCalls: 0,
  };

  constructor(readonly opts: RolloutOptions) {
    this.policy = opts.policy;
    this.tools = opts.tools;
    this.cfg = opts.config;
    this.stopStrings = opts.tools.tags.map((t) => `</${t}>`);
    this.norm = entropyDivisor(this.cfg, this.policy.vocabSize);
    const eos = this.policy.tokenizer.eosTokenIds;
    if (eos.length === 0) {
      throw new ArpoError("rollout: the policy's tokenizer declares no end-of-sequence token id.");
    }
    this.eosId = eos[0];
  }

  /** ARPO and its random control grow trees; GRPO samples M independent trajectories. */
  get branching(): boolean {
    return this.cfg.algorithm !== "grpo";
  }

  async run(requests: readonly RolloutRequest[]): Promise<RolloutResult> {
    const t0 = performance.now();
    const forwarded0 = this.policy.stats.tokensForwarded;
    const seen = new Set<string>();
    const questions: Question[] = requests.map((r, index) => {
      if (seen.has(r.task.id)) {
        throw new ArpoError(
          `rollout: task id "${r.task.id}" appears twice in one batch; task ids key the random ` +
            `streams and must be unique within a batch.`,
        );
      }
      seen.add(r.task.id);
      if (r.promptTokens.length === 0) {
        throw new ArpoError(`rollout: task "${r.task.id}" has an empty prompt.`);
      }
      const promptText = this.policy.tokenizer.decode(r.promptTokens);
      return {
        index,
        task: r.task,
        tree: new RolloutTree(r.task, [...r.promptTokens], promptText),
        trajs: [],
        fillers: 0,
        root: this.opts.rng.child("q", r.task.id),
        initial: this.branching ? this.cfg.initial : this.cfg.rollouts,
        kPrompt: 0,
      };
    });
    try {
      if (this.cfg.aepo?.preMonitor) await this.preMonitor(questions);
      for (const q of questions) {
        for (let i = 0; i < q.initial; i++) this.newWhole(q, "initial", String(i));
      }
      while (questions.some((q) => q.trajs.some((t) => t.active))) {
        await this.round(questions);
        this.stats.rounds++;
        this.opts.onRound?.({
          round: this.stats.rounds,
          active: questions.reduce((n, q) => n + q.trajs.filter((t) => t.active).length, 0),
          finished: questions.reduce((n, q) => n + q.trajs.filter((t) => !t.active).length, 0),
        });
      }
    } finally {
      for (const q of questions) {
        for (const t of q.trajs) {
          if (t.probe?.snapshot != null) this.policy.release(t.probe.snapshot);
          if (t.seq !== null) this.policy.release(t.seq);
          t.seq = null;
          t.probe = null;
        }
      }
    }
    this.stats.tokensForwarded = this.policy.stats.tokensForwarded - forwarded0;
    for (const q of questions) {
      for (const t of q.tree.trajectories) {
        // From scratch, a trajectory forwards its prompt and response up to its last sampled
        // token, which itself is never forwarded.
        let end = 0;
        for (const id of t.segments) {
          const s = q.tree.segments[id];
          if (s.kind === "gen") end = s.start + s.tokens.length;
        }
        this.stats.scratchTokens += q.tree.promptTokens.length + end - 1;
      }
    }
    this.timings.totalMs = performance.now() - t0;
    this.timings.bookkeepingMs = this.timings.totalMs - this.timings.generateMs -
      this.timings.toolMs;
    return {
      questions: questions.map((q) => ({ task: q.task, tree: q.tree })),
      stats: this.stats,
      timings: this.timings,
    };
  }

  /**
   * AEPO pre-monitoring (aepo.ts): a root generation and a probe trajectory per question, each an
   * independent GRPO sub-rollout of one trajectory, set every question's m.
   */
  async preMonitor(questions: Question[]): Promise<void> {
    const { aepo, ...rest } = this.cfg;
    const one = {
      ...rest,
      algorithm: "grpo" as const,
      rollouts: 1,
      initial: 1,
      mode: "paper" as const,
    };
    const lnV = Math.log(this.policy.vocabSize);
    // The reference's segment value: Σ of the first ≤ window entropies / ln V.
    const value = (e: readonly number[]) => {
      let s = 0;
      for (let j = 0; j < Math.min(this.cfg.referenceWindow, e.length); j++) s += e[j];
      return s / lnV;
    };
    const sub = async (config: RolloutConfig, tag: string) => {
      const r = await new Engine({
        policy: this.policy,
        tools: this.tools,
        config,
        rng: this.opts.rng.child("premonitor", tag),
      }).run(questions.map((q) => ({
        task: { ...q.task, id: `${q.task.id}#premonitor-${tag}` },
        promptTokens: q.tree.promptTokens,
      })));
      this.stats.generateCalls += r.stats.generateCalls;
      this.stats.generatedTokens += r.stats.generatedTokens;
      this.stats.toolCalls += r.stats.toolCalls;
      this.timings.generateMs += r.timings.generateMs;
      this.timings.toolMs += r.timings.toolMs;
      return r.questions.map((x) =>
        x.tree.segments.filter((g) => g.kind === "gen").map((g) => value(g.entropies))
      );
    };
    // The root: ≤ root_tokens tokens, stopped at a tool tag (a call gets no result: cap 0).
    const roots = await sub(
      { ...one, maxToolCalls: 0, maxResponseTokens: aepo!.rootTokens },
      "root",
    );
    const probes = await sub(one, "probe");
    questions.forEach((q, i) => {
      const hRoot = roots[i][0] ?? 0;
      const hTool = meanToolEntropy(probes[i], hRoot);
      q.initial = preMonitorInitial(this.cfg.rollouts, hRoot, hTool, aepo!.preMonitorBeta);
      q.tree.premonitor = { hRoot, hSteps: probes[i], hTool, initial: q.initial };
    });
  }

  /** A whole trajectory from the prompt (initial or filler). */
  newWhole(q: Question, kind: TrajectoryKind, path: string): Traj {
    const node = q.tree.addTrajectory({
      path,
      kind,
      parent: null,
      segments: [],
      end: null,
      toolCalls: [],
    });
    const seq = this.policy.create(q.tree.promptTokens, q.root.child("t", path));
    const t: Traj = {
      node,
      q,
      seq,
      active: true,
      calls: 0,
      hInitPaper: null,
      hInitRef: null,
      probe: null,
      streak: 0,
    };
    q.trajs.push(t);
    return t;
  }

  /** A child sharing `parent`'s path up to and including segment `at`. */
  newChild(parent: Traj, at: Segment, path: string, seq: SeqId, calls: number): Traj {
    const q = parent.q;
    const cut = parent.node.segments.indexOf(at.id);
    const node = q.tree.addTrajectory({
      path,
      kind: "branch",
      parent: parent.node.index,
      segments: parent.node.segments.slice(0, cut + 1),
      end: null,
      toolCalls: parent.node.toolCalls.filter((id) => q.tree.toolCalls[id].result <= at.id),
    });
    const t: Traj = {
      node,
      q,
      seq,
      active: true,
      calls,
      // Paper H_init is the start of the response, which the child shares. Reference mode: the
      // parent's value (`parent`), or null so the child's first own segment sets it (`own`).
      hInitPaper: parent.hInitPaper,
      hInitRef: this.cfg.referenceInit === "parent" ? parent.hInitRef : null,
      probe: null,
      streak: parent.streak,
    };
    q.trajs.push(t);
    return t;
  }

  end(t: Traj, reason: EndReason): void {
    t.active = false;
    t.node.end = reason;
    if (t.seq !== null) this.policy.release(t.seq);
    t.seq = null;
  }

  limitLeft(t: Traj): number {
    return this.cfg.maxResponseTokens - t.q.tree.responseLength(t.node);
  }

  async round(questions: Question[]): Promise<void> {
    // 1. One batched generate over every active trajectory.
    const active: Traj[] = [];
    for (const q of questions) for (const t of q.trajs) if (t.active) active.push(t);
    const requests = active.map((t) => ({
      seq: t.seq!,
      stop: { strings: this.stopStrings, maxTokens: this.limitLeft(t) },
    }));
    const needTop = this.cfg.mode === "reference" && this.cfg.referenceTopK > 0;
    // A row that stops while others still decode gets its plan now and its tool call started, so
    // the call runs during the rest of the generate. Nothing is applied before the round's
    // generate has returned, and the plan is the one step 2 would make: same trees.
    const bySeq = new Map(active.map((t) => [t.seq!, t]));
    const early = new Map<Traj, { plan: SegmentPlan; outcome?: Promise<ToolCallOutcome> }>();
    const onResult = (r: GenerateResult) => {
      const t = bySeq.get(r.seq);
      if (t === undefined || early.has(t)) return;
      let plan: SegmentPlan;
      try {
        plan = this.planSegment(t, r);
      } catch {
        return; // step 2 plans it again and reports the error
      }
      const outcome = plan.kind === "call" && plan.input !== ""
        ? this.callTool(t, plan.tag, plan.input, t.calls + 1)
        : undefined;
      early.set(t, { plan, outcome });
    };
    const g0 = performance.now();
    let results: GenerateResult[];
    try {
      results = await this.policy.generate(
        requests,
        this.cfg.sampling,
        needTop ? { topLogprobs: this.cfg.referenceTopK, onResult } : { onResult },
      );
    } catch (e) {
      if (e instanceof ArpoError) throw e;
      throw new ArpoError(`rollout: the policy failed to generate: ${describeError(e)}`, {
        cause: e,
      });
    }
    this.timings.generateMs += performance.now() - g0;
    this.stats.generateCalls++;
    if (results.length !== requests.length) {
      throw new ArpoError(
        `rollout: the policy answered ${results.length} of ${requests.length} generate requests.`,
      );
    }

    // 2. Record segments, classify stops.
    const calls: PendingCall[] = [];
    const probesDone = new Set<Traj>();
    const genOf = new Map<Traj, readonly GeneratedToken[]>();
    for (let i = 0; i < active.length; i++) {
      const t = active[i], r = results[i];
      if (r.seq !== requests[i].seq) {
        throw new ArpoError(`rollout: the policy returned results out of request order.`);
      }
      const first = early.get(t);
      const plan = first?.plan ?? this.planSegment(t, r);
      this.stats.generatedTokens += r.tokens.length;
      const seg = this.addGen(t, r);
      genOf.set(t, r.tokens);
      if (t.hInitPaper === null) {
        t.hInitPaper = leadingEntropies(seg.entropies, this.cfg.entropyTokens);
      }
      if (this.cfg.mode === "reference" && t.hInitRef === null) {
        t.hInitRef = referenceSegmentEntropy(r.tokens, this.cfg, this.norm);
      }
      if (t.probe !== null) probesDone.add(t);
      if (plan.kind === "eos" || plan.kind === "length") this.end(t, plan.kind);
      else if (plan.kind === "tool_cap") {
        this.addForcedEos(t);
        this.end(t, "tool_cap");
      } else {
        t.calls++;
        if (plan.input === "") {
          this.end(t, "empty_call");
          continue;
        }
        calls.push({
          traj: t,
          tag: plan.tag,
          input: plan.input,
          seg,
          genTokens: r.tokens,
          outcome: first?.outcome,
        });
      }
    }

    // 3. All tool calls of this round, concurrently (the early ones already running); applied
    // in trajectory order. toolMs is the time the round waits for them after its generate.
    const x0 = performance.now();
    const outcomes = await Promise.all(
      calls.map((c) => c.outcome ?? this.callTool(c.traj, c.tag, c.input, c.traj.calls)),
    );
    this.timings.toolMs += performance.now() - x0;
    const resulted = new Map<Traj, { call: ToolCallNode; result: Segment; gen: PendingCall }>();
    for (let i = 0; i < calls.length; i++) {
      const c = calls[i], o = outcomes[i], t = c.traj;
      const { call, result } = this.addResult(c, o);
      this.timings.toolCalls.push({
        question: t.q.index,
        toolCall: call.id,
        tag: c.tag,
        durationMs: o.durationMs,
        source: o.source,
        attempts: o.attempts,
        infrastructureFailure: o.infrastructureFailure,
      });
      this.stats.toolCalls++;
      if (t.active) resulted.set(t, { call, result, gen: c });
    }

    // 4. Branch decisions, per question in trajectory order.
    for (const q of questions) {
      // The reference's per-prompt count is updated after the round: all decisions see this.
      q.kPrompt = q.trajs.length - q.initial;
      const existing = [...q.trajs];
      for (const t of existing) {
        if (probesDone.has(t)) this.resolveProbe(t, genOf.get(t)!);
        const r = resulted.get(t);
        if (r === undefined) continue;
        if (this.cfg.mode === "paper") this.startProbe(t, r.call, r.result);
        else this.referenceDecision(t, r.call, r.result, r.gen.genTokens);
      }
    }

    // 5. Fillers: one fresh whole trajectory per round for a question whose paths all ended.
    if (this.branching) {
      for (const q of questions) {
        if (q.trajs.length < this.cfg.rollouts && !q.trajs.some((t) => t.active)) {
          this.newWhole(q, "filler", String(q.initial + q.fillers));
          q.fillers++;
        }
      }
    }
  }

  /** ARPO's / random's rule, or AEPO's with the penalty count of its scope. */
  decide(t: Traj, deltaH: number, draws: Stream): BranchOutcome & {
    penaltyK?: number;
    penaltyFactor?: number;
  } {
    const a = this.cfg.aepo;
    if (this.cfg.algorithm !== "aepo" || a === undefined) {
      return decideBranch(this.cfg, deltaH, this.budget(t.q), draws);
    }
    const k = a.penaltyScope === "prompt" ? t.q.kPrompt : t.streak;
    return decideAepoBranch(this.cfg, deltaH, this.budget(t.q), k, draws);
  }

  /** AEPO's path count: a branching call extends the streak (children inherit it), else 0. */
  afterDecision(t: Traj, children: readonly Traj[]): void {
    if (children.length === 0) {
      t.streak = 0;
      return;
    }
    t.streak++;
    for (const c of children) c.streak = t.streak;
  }

  budget(q: Question): number {
    return this.cfg.rollouts - q.trajs.length;
  }

  childPath(t: Traj, call: number, z: number): string {
    return `${t.node.path}/${call}.${z}`;
  }

  /** Paper mode: after a result, take a snapshot to fork children from once the probe is in. */
  startProbe(t: Traj, call: ToolCallNode, result: Segment): void {
    let snapshot: SeqId | null = null;
    if (this.branching && this.budget(t.q) > 0) {
      snapshot = this.policy.fork(
        t.seq!,
        t.q.root.child("t", this.childPath(t, call.call, 0)),
      );
    }
    t.probe = { snapshot, toolCall: call, result };
  }

  /** Paper mode: the k tokens after the result are in (the start of the next segment). */
  resolveProbe(t: Traj, gen: readonly GeneratedToken[]): void {
    const probe = t.probe!;
    t.probe = null;
    const hNow = gen.slice(0, this.cfg.entropyTokens).map((g) => g.entropy);
    const hInit = t.hInitPaper ?? [];
    const deltaH = paperDeltaH(hNow, hInit, this.norm);
    const fork = {
      trajectory: t.node.index,
      toolCall: probe.toolCall.id,
      at: probe.result.id,
      mode: "paper" as const,
      hInit,
      hNow,
      deltaH,
    };
    if (!this.branching) {
      const p = branchProbability(this.cfg, deltaH);
      t.q.tree.addFork({ ...fork, p, u: [], decision: "off", children: [] });
      return;
    }
    // `threshold` draws nothing; `sample` and `random` draw from this call's keyed stream.
    const out = this.decide(
      t,
      deltaH,
      t.q.root.child("fork", t.node.path, probe.toolCall.call),
    );
    const children: number[] = [];
    const made: Traj[] = [];
    const snap = probe.snapshot;
    if (out.children > 0 && snap !== null) {
      // Children 1..Z−1 fork from the snapshot before it generates anything; child 0 is it.
      const seqs = [snap];
      for (let z = 1; z < out.children; z++) {
        seqs.push(
          this.policy.fork(snap, t.q.root.child("t", this.childPath(t, probe.toolCall.call, z))),
        );
      }
      seqs.forEach((seq, z) => {
        const child = this.newChild(
          t,
          probe.result,
          this.childPath(t, probe.toolCall.call, z),
          seq,
          probe.toolCall.call,
        );
        children.push(child.node.index);
        made.push(child);
      });
    } else if (snap !== null) this.policy.release(snap);
    const decision = out.children > 0 && snap === null ? "budget" : out.decision;
    this.afterDecision(t, made);
    t.q.tree.addFork({ ...fork, p: out.p, u: out.u, decision, children, ...penalty(out) });
  }

  /** Reference mode: decide right after the result, from the segment that ended at the call. */
  referenceDecision(
    t: Traj,
    call: ToolCallNode,
    result: Segment,
    gen: readonly GeneratedToken[],
  ): void {
    const now = referenceSegmentEntropy(gen, this.cfg, this.norm);
    const hInit = t.hInitRef ?? now;
    const deltaH = now - hInit;
    const fork = {
      trajectory: t.node.index,
      toolCall: call.id,
      at: result.id,
      mode: "reference" as const,
      hInit: [hInit],
      hNow: [now],
      deltaH,
    };
    if (!this.branching) {
      const p = branchProbability(this.cfg, deltaH);
      t.q.tree.addFork({ ...fork, p, u: [], decision: "off", children: [] });
      return;
    }
    const draws = t.q.root.child("fork", t.node.path, call.call);
    const out = this.decide(t, deltaH, draws);
    const made: Traj[] = [];
    for (let z = 0; z < out.children; z++) {
      const path = this.childPath(t, call.call, z);
      const seq = this.policy.fork(t.seq!, t.q.root.child("t", path));
      made.push(this.newChild(t, result, path, seq, t.calls));
    }
    this.afterDecision(t, made);
    const children = made.map((c) => c.node.index);
    t.q.tree.addFork({
      ...fork,
      p: out.p,
      u: out.u,
      decision: out.decision,
      children,
      ...penalty(out),
    });
  }

  tagOf(stopText: string): string {
    const i = this.stopStrings.indexOf(stopText);
    if (i < 0) {
      throw new ArpoError(
        `rollout: the policy stopped at "${stopText}", which is not a tool closing tag ` +
          `(expected one of ${this.stopStrings.join(", ")}).`,
      );
    }
    return this.tools.tags[i];
  }

  /**
   * What the segment `r` that `t` just generated leads to, before anything of it is recorded:
   * a pure function of the trajectory so far and `r`, so a plan made while the round's generate
   * still runs is the plan made after it.
   */
  planSegment(t: Traj, r: GenerateResult): SegmentPlan {
    if (r.stop.reason === "token") return { kind: "eos" };
    if (r.stop.reason === "length") return { kind: "length" };
    const tag = this.tagOf(r.stop.text);
    if (t.calls >= this.cfg.maxToolCalls) return { kind: "tool_cap" };
    return { kind: "call", tag, input: this.extractCall(t, tag, r.tokens.map((g) => g.id)) };
  }

  /**
   * The body of the last `<tag>…</tag>` of the response so far followed by `more` (trimmed); ""
   * when there is none.
   */
  extractCall(t: Traj, tag: string, more: readonly number[]): string {
    const tokens: number[] = [];
    for (const id of t.node.segments) tokens.push(...t.q.tree.segments[id].tokens);
    tokens.push(...more);
    const text = this.policy.tokenizer.decode(tokens);
    const close = `</${tag}>`, open = `<${tag}>`;
    const end = text.lastIndexOf(close);
    if (end < 0) return "";
    const start = text.lastIndexOf(open, end - open.length);
    if (start < 0) return "";
    return text.slice(start + open.length, end).trim();
  }

  addGen(t: Traj, r: GenerateResult): Segment {
    const tree = t.q.tree;
    const parent = t.node.segments.at(-1) ?? null;
    const ids = r.tokens.map((g) => g.id);
    const seg = tree.addSegment({
      parent,
      kind: "gen",
      trajectory: t.node.index,
      start: tree.responseLength(t.node),
      tokens: ids,
      logprobs: r.tokens.map((g) => g.logprob),
      entropies: r.tokens.map((g) => g.entropy),
      lossMask: ids.map(() => 1 as const),
      text: this.policy.tokenizer.decode(ids),
      stop: r.stop.reason === "token" ? "eos" : r.stop.reason === "string" ? "tool" : "length",
    });
    t.node.segments.push(seg.id);
    return seg;
  }

  /** Over the tool-call cap: end-of-sequence, as the reference (loss mask 1, not sampled). */
  addForcedEos(t: Traj): void {
    if (this.limitLeft(t) <= 0) return;
    const tree = t.q.tree;
    const seg = tree.addSegment({
      parent: t.node.segments.at(-1) ?? null,
      kind: "eos",
      trajectory: t.node.index,
      start: tree.responseLength(t.node),
      tokens: [this.eosId],
      logprobs: [0],
      entropies: [0],
      lossMask: [1],
      text: this.policy.tokenizer.decode([this.eosId]),
    });
    t.node.segments.push(seg.id);
  }

  /** Call `tag` on `input` as the trajectory's call number `call` (1-based); never rejects. */
  async callTool(t: Traj, tag: string, input: string, call: number): Promise<ToolCallOutcome> {
    try {
      // The site names the call's place in the rollout (question, trajectory path, call index):
      // stable across scheduling, so a replay can hand each place its recorded result.
      const site = toolCallSite(t.q.task.id, t.node.path, call);
      return await this.tools.call(tag, input, { site });
    } catch (e) {
      // The runtime promises never to throw; if it does, the model still gets result text.
      return {
        tool: tag,
        tag,
        input,
        output: `Error: ${describeError(e)}`,
        error: true,
        timedOut: false,
        truncated: false,
        source: "live",
        attempts: 1,
        durationMs: 0,
      };
    }
  }

  addResult(c: PendingCall, o: ToolCallOutcome): { call: ToolCallNode; result: Segment } {
    const t = c.traj, tree = t.q.tree;
    // Framed so that the output cannot close its segment or forge protocol tags.
    const text = frameResult(o.output, this.tools.tags);
    let tokens = this.policy.tokenizer.encode(text);
    const room = this.limitLeft(t);
    const cut = tokens.length > room;
    if (cut) tokens = tokens.slice(0, room);
    const seg = tree.addSegment({
      parent: t.node.segments.at(-1) ?? null,
      kind: "result",
      trajectory: t.node.index,
      start: tree.responseLength(t.node),
      tokens,
      logprobs: tokens.map(() => 0),
      entropies: tokens.map(() => 0),
      lossMask: tokens.map(() => 0 as const),
      text: cut ? this.policy.tokenizer.decode(tokens) : text,
      cut: cut || undefined,
    });
    t.node.segments.push(seg.id);
    const call = tree.addToolCall({
      trajectory: t.node.index,
      call: t.calls,
      segment: c.seg.id,
      result: seg.id,
      tag: c.tag,
      tool: o.tool,
      input: c.input,
      output: o.output,
      error: o.error,
      timedOut: o.timedOut,
      truncated: o.truncated,
    });
    t.node.toolCalls.push(call.id);
    if (o.infrastructureFailure !== undefined) {
      // The machine failed, not the model: the trajectory stops here and is marked, so that no
      // update, accuracy or branch ever rests on a result that was not the tool's answer.
      t.node.infrastructureFailure = `${c.tag} call ${t.calls}: ${o.infrastructureFailure}`;
      this.end(t, "infrastructure");
    } else if (tokens.length >= room) this.end(t, "length");
    else this.policy.append(t.seq!, tokens);
    return { call, result: seg };
  }
}

/** The penalty fields of an AEPO decision's fork record (none for the other algorithms). */
function penalty(out: { penaltyK?: number; penaltyFactor?: number }) {
  return out.penaltyK === undefined
    ? {}
    : { penaltyK: out.penaltyK, penaltyFactor: out.penaltyFactor };
}
