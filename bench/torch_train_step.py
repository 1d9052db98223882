"""PyTorch CPU reference for bench/train_bench.ts: the same decoder (HF LlamaForCausalLM built
from the same config.json and model.safetensors), the same batch (token ids, loss mask) and the
same step: token-mean cross-entropy on loss-mask tokens (sft) or the clipped surrogate with dual
clip (pg, ARPO.md §4: ε 0.2, c 3, token-mean), backward, grad-norm clip 1.0, AdamW.

Usage: python bench/torch_train_step.py DIR STEPS THREADS
DIR holds config.json, model.safetensors and batch.json ({"tokens": [[...]], "mask": [[...]],
"objective": "sft" | "pg", and for pg "old_logp": [[...]], "adv": [...]}, log-probs aligned with
tokens).
Prints one JSON line: {"ms": [per-step wall ms], "loss": [...], "peak_mb": peak RSS (VmHWM)}.
Only for benchmarking; the project never needs Python.
"""
import json
import sys
import time

import torch
from safetensors.torch import load_file
from transformers import LlamaConfig, LlamaForCausalLM


def main() -> None:
    d, steps, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg = LlamaConfig(**json.load(open(f"{d}/config.json")))
    model = LlamaForCausalLM(cfg)
    sd = load_file(f"{d}/model.safetensors")
    missing, unexpected = model.load_state_dict(sd, strict=False)
    assert not unexpected, unexpected
    model.tie_weights()
    batch = json.load(open(f"{d}/batch.json"))
    ids = torch.tensor(batch["tokens"], dtype=torch.long)
    mask = torch.tensor(batch["mask"], dtype=torch.float32)
    objective = batch.get("objective", "sft")
    if objective == "pg":
        old = torch.tensor(batch["old_logp"], dtype=torch.float32)
        adv = torch.tensor(batch["adv"], dtype=torch.float32)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
                            weight_decay=0.01)
    ms, losses = [], []
    for _ in range(steps):
        t0 = time.perf_counter()
        logits = model(input_ids=ids).logits[:, :-1]
        logp = torch.log_softmax(logits.float(), -1)
        tgt = ids[:, 1:]
        m = mask[:, 1:]
        tok = logp.gather(-1, tgt.unsqueeze(-1)).squeeze(-1)
        if objective == "pg":
            ratio = torch.exp(tok - old[:, 1:])
            a = adv.unsqueeze(-1)
            l1 = -a * ratio
            l2 = -a * torch.clamp(ratio, 0.8, 1.2)
            per = torch.maximum(l1, l2)
            per = torch.where(a < 0, torch.minimum(per, -a * 3.0), per)
        else:
            per = -tok
        loss = (per * m).sum() / m.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ms.append((time.perf_counter() - t0) * 1000)
        losses.append(loss.item())
    peak = 0.0
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            peak = int(line.split()[1]) / 1024
    print(json.dumps({"ms": ms, "loss": losses, "peak_mb": peak}))


if __name__ == "__main__":
    main()
