"""Build a random-weight model directory in a released model's shapes, with reference logits.

    python scripts/real_shapes/make_model.py qwen2.5-0.5b OUT_DIR

Writes OUT_DIR/config.json and model.safetensors (float32, as transformers saves them: tied
embeddings once), and OUT_DIR/reference.json + reference.f32: transformers' logits [T, V] on a
few fixed token ids. Weights come from transformers' own initializer under torch.manual_seed(0).
Needs torch and transformers (see ../shared/PLATFORM.md for the pip mirror); the project itself
never needs Python.
"""
import json
import sys

import torch
from transformers import AutoConfig, AutoModelForCausalLM

SHAPES = {
    # https://huggingface.co/Qwen/Qwen2.5-0.5B-Instruct/blob/main/config.json
    "qwen2.5-0.5b": dict(model_type="qwen2", hidden_size=896, intermediate_size=4864,
                         num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                         vocab_size=151936, max_position_embeddings=32768, rope_theta=1000000.0,
                         rms_norm_eps=1e-6, tie_word_embeddings=True, bos_token_id=151643,
                         eos_token_id=151645),
    # https://huggingface.co/Qwen/Qwen2.5-1.5B-Instruct/blob/main/config.json
    "qwen2.5-1.5b": dict(model_type="qwen2", hidden_size=1536, intermediate_size=8960,
                         num_hidden_layers=28, num_attention_heads=12, num_key_value_heads=2,
                         vocab_size=151936, max_position_embeddings=32768, rope_theta=1000000.0,
                         rms_norm_eps=1e-6, tie_word_embeddings=True, bos_token_id=151643,
                         eos_token_id=151645),
    # https://huggingface.co/Qwen/Qwen3-0.6B/blob/main/config.json
    "qwen3-0.6b": dict(model_type="qwen3", hidden_size=1024, intermediate_size=3072,
                       num_hidden_layers=28, num_attention_heads=16, num_key_value_heads=8,
                       head_dim=128, vocab_size=151936, max_position_embeddings=40960,
                       rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True,
                       bos_token_id=151643, eos_token_id=151645),
}
TOKENS = [151644, 872, 198, 3838, 374, 220, 17, 10, 17, 30]


def main() -> None:
    name, out = sys.argv[1], sys.argv[2]
    torch.manual_seed(0)
    cfg = AutoConfig.for_model(**SHAPES[name])
    cfg.torch_dtype = "float32"
    model = AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.float32).eval()
    model.save_pretrained(out, safe_serialization=True)
    with torch.no_grad():
        logits = model(torch.tensor([TOKENS])).logits[0].float().contiguous()
    logits.numpy().tofile(f"{out}/reference.f32")
    json.dump({"shape": name, "tokens": TOKENS, "vocab": cfg.vocab_size,
               "parameters": sum(p.numel() for p in model.parameters()),
               "torch": torch.__version__, "transformers": __import__("transformers").__version__},
              open(f"{out}/reference.json", "w"), indent=1)


if __name__ == "__main__":
    main()
