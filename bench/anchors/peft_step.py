#!/usr/bin/env python3
"""The anchor for `catrl bench train --anchor peft`: one GRPO step of PyTorch + PEFT on the same model
shape, threads, tokens, LoRA targets and loss as the native trainer's step, at PEFT's documented
settings (get_peft_model + LoraConfig, no dropout, AdamW). Prints one JSON object on stdout; progress
goes to stderr.

The model is built from a config with random weights (speed and memory do not depend on weight
values): fp32 on CPU, bf16 on CUDA. Like TRL's GRPOTrainer, the output head runs only on the
completion positions (`logits_to_keep`) and the log-softmax is taken row by row, so the anchor does
not pay for logits it never uses. Not a dependency of the project: it needs torch, transformers and
peft (see README, "Benchmarks against PyTorch + PEFT").
"""

import argparse
import json
import platform
import resource
import statistics
import sys
import time

import peft
import torch
import transformers
from peft import LoraConfig, get_peft_model

# The seven projections the native trainer adapts, by their Hugging Face module names.
TARGET_MODULES = {
    "q": "q_proj",
    "k": "k_proj",
    "v": "v_proj",
    "o": "o_proj",
    "gate": "gate_proj",
    "up": "up_proj",
    "down": "down_proj",
}


def log(msg):
    print(f"peft: {msg}", file=sys.stderr, flush=True)


def build_config(shape):
    common = dict(
        vocab_size=shape["n_vocab"],
        hidden_size=shape["n_embd"],
        intermediate_size=shape["n_ff"],
        num_hidden_layers=shape["n_layer"],
        num_attention_heads=shape["n_head"],
        num_key_value_heads=shape["n_head_kv"],
        head_dim=shape["head_dim"],
        rope_theta=shape["rope_freq_base"],
        rms_norm_eps=shape["rms_eps"],
        tie_word_embeddings=shape["tied_embeddings"],
        max_position_embeddings=max(4096, shape.get("context_length", 0)),
        use_cache=False,
    )
    arch = shape["arch"]
    if arch == "gemma3":
        return gemma3_config(shape, common)
    if arch == "qwen3":
        return transformers.Qwen3Config(**common)
    if arch == "qwen2":
        return transformers.Qwen2Config(**common)
    if arch == "llama":
        return transformers.LlamaConfig(**common)
    raise SystemExit(f"peft_step.py: --shape arch: unsupported architecture {arch!r} (llama, qwen2, qwen3, gemma3)")


def gemma3_config(shape, common):
    # The same model as llama.cpp's gemma3 reads from the GGUF catrl model make writes: every
    # sliding_window_pattern-th layer global (linear RoPE scaling there), the others local with their own base.
    common = {k: v for k, v in common.items() if k != "rope_theta"}
    pattern = shape.get("sliding_window_pattern", 6)
    layer_types = [
        "full_attention" if i % pattern == pattern - 1 else "sliding_attention" for i in range(shape["n_layer"])
    ]
    full = {"rope_type": "default", "rope_theta": shape["rope_freq_base"]}
    if shape.get("rope_scale_linear"):
        full = {"rope_type": "linear", "factor": shape["rope_scale_linear"], "rope_theta": shape["rope_freq_base"]}
    local = {"rope_type": "default", "rope_theta": shape.get("rope_freq_base_swa", 10000.0)}
    return transformers.Gemma3TextConfig(
        **common,
        sliding_window=shape.get("sliding_window", 4096),
        layer_types=layer_types,
        query_pre_attn_scalar=shape["head_dim"],
        rope_parameters={"full_attention": full, "sliding_attention": local},
        final_logit_softcapping=None,
        attn_logit_softcapping=None,
    )


def token_ids(seqs, prompt_tokens, completion_tokens, n_vocab):
    # The same ids as bench/train.ts feeds the native trainer (spread over the vocabulary).
    return torch.tensor(
        [
            [(7919 * (s * 131 + j + 1)) % n_vocab for j in range(prompt_tokens)]
            + [(104729 * (s * 17 + j + 3)) % n_vocab for j in range(completion_tokens)]
            for s in range(seqs)
        ],
        dtype=torch.long,
    )


def completion_logprobs(model, ids, completion_tokens):
    """Log-probability of each completion token: [seqs, completion_tokens], in fp32."""
    # Positions P-1 .. T-2 predict the completion; the last input token predicts nothing we train on.
    logits = model(input_ids=ids[:, :-1], logits_to_keep=completion_tokens).logits
    targets = ids[:, -completion_tokens:]
    # Row by row, as TRL's selective_log_softmax does, so that no second [C x V] tensor is held.
    picked = torch.gather(logits, -1, targets.unsqueeze(-1)).squeeze(-1).float()
    lse = torch.stack([torch.logsumexp(row.float(), dim=-1) for row in logits])
    return picked - lse


def grpo_loss(logp, old, ref, adv, beta, clip_eps):
    """The native trainer's loss (src/rl/trainer/index.ts): clipped ratio + beta * k3 KL, mean per
    sequence over its tokens, then mean over sequences."""
    ratio = torch.exp(logp - old)
    a = adv.unsqueeze(1)
    pg = -torch.min(ratio * a, torch.clamp(ratio, 1 - clip_eps, 1 + clip_eps) * a)
    d = ref - logp
    kl = torch.exp(d) - d - 1
    return (pg + beta * kl).mean(dim=1).mean()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--shape", required=True, help="model shape as JSON (bench/train.ts passes the GGUF's)")
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--seqs", type=int, required=True)
    p.add_argument("--prompt-tokens", type=int, required=True)
    p.add_argument("--completion-tokens", type=int, required=True)
    p.add_argument("--rank", type=int, default=16)
    p.add_argument("--alpha", type=float, default=32)
    p.add_argument("--targets", default="q,k,v,o,gate,up,down")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--dtype", choices=["auto", "float32", "bfloat16"], default="auto")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--beta", type=float, default=0.01)
    p.add_argument("--clip-eps", type=float, default=0.2)
    p.add_argument("--max-grad-norm", type=float, default=1.0)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument(
        "--gradient-checkpointing",
        action="store_true",
        help="recompute activations in the backward pass (off by default, as in transformers)",
    )
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()

    try:
        shape = json.loads(a.shape)
    except json.JSONDecodeError as e:
        raise SystemExit(f"peft_step.py: --shape is not JSON: {e}")
    targets = [t.strip() for t in a.targets.split(",")]
    bad = [t for t in targets if t not in TARGET_MODULES]
    if bad:
        raise SystemExit(f"peft_step.py: --targets: unknown {bad} (q,k,v,o,gate,up,down)")
    if a.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("peft_step.py: --device cuda but torch sees no CUDA device")
    dtype = {"auto": torch.float32 if a.device == "cpu" else torch.bfloat16, "float32": torch.float32,
             "bfloat16": torch.bfloat16}[a.dtype]

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    device = torch.device(a.device)
    cuda = a.device == "cuda"

    def sync():
        if cuda:
            torch.cuda.synchronize()

    t0 = time.perf_counter()
    config = build_config(shape)
    log(f"building a random-weight {shape['arch']} model ({shape['n_layer']} layers, width {shape['n_embd']}) "
        f"in {str(dtype).removeprefix('torch.')} on {a.device} with {a.threads} thread(s)...")
    with device:
        model = transformers.AutoModelForCausalLM.from_config(config, dtype=dtype)
    if a.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    lora = LoraConfig(
        r=a.rank,
        lora_alpha=a.alpha,
        lora_dropout=0.0,
        target_modules=[TARGET_MODULES[t] for t in targets],
        bias="none",
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, lora)
    model.train()
    params = [q for q in model.parameters() if q.requires_grad]
    trainable = sum(q.numel() for q in params)
    opt = torch.optim.AdamW(params, lr=a.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=a.weight_decay)
    sync()
    load_ms = (time.perf_counter() - t0) * 1000

    ids = token_ids(a.seqs, a.prompt_tokens, a.completion_tokens, shape["n_vocab"]).to(device)
    tokens_per_pass = a.seqs * (a.prompt_tokens + a.completion_tokens - 1)
    adv = torch.tensor([-1.0 if i % 2 else 1.0 for i in range(a.seqs)], device=device)

    # old / reference log-probs from a forward pass each, as in a GRPO step; the timed step then
    # measures the update alone (forward + backward + clipping + AdamW), like the native bench.
    with torch.no_grad():
        old = completion_logprobs(model, ids, a.completion_tokens)
        with model.disable_adapter():
            ref = completion_logprobs(model, ids, a.completion_tokens)

    def step():
        opt.zero_grad(set_to_none=True)
        logp = completion_logprobs(model, ids, a.completion_tokens)
        loss = grpo_loss(logp, old, ref, adv, a.beta, a.clip_eps)
        loss.backward()
        if a.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(params, a.max_grad_norm)
        opt.step()
        return loss.item()

    for _ in range(a.warmup):  # first-use allocation and kernel selection
        step()
    forward_ms, step_ms = [], []
    for r in range(a.repeats):
        sync()
        s0 = time.perf_counter()
        with torch.no_grad():
            completion_logprobs(model, ids, a.completion_tokens)
        sync()
        forward_ms.append((time.perf_counter() - s0) * 1000)
        s0 = time.perf_counter()
        loss = step()
        sync()
        step_ms.append((time.perf_counter() - s0) * 1000)
        log(f"forward {forward_ms[-1] / 1000:.2f} s, step {step_ms[-1] / 1000:.2f} s "
            f"({tokens_per_pass} tokens, loss {loss:.4g})")

    out = {
        "anchor": "peft",
        "device": a.device,
        "deviceName": torch.cuda.get_device_name(0) if cuda else platform.processor() or platform.machine(),
        "dtype": str(dtype).removeprefix("torch."),
        "threads": a.threads,
        "attnImplementation": getattr(model.config, "_attn_implementation", None),
        "gradientCheckpointing": a.gradient_checkpointing,
        "trainableParams": trainable,
        "loadMs": load_ms,
        "tokensPerPass": tokens_per_pass,
        "forwardMs": forward_ms,
        "forwardTokPerS": tokens_per_pass / (statistics.median(forward_ms) / 1000),
        "stepMs": step_ms,
        "stepTokPerS": tokens_per_pass / (statistics.median(step_ms) / 1000),
        # ru_maxrss is in KiB on Linux
        "peakRssBytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "cudaPeakBytes": torch.cuda.max_memory_allocated() if cuda else None,
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "peft": peft.__version__,
        },
    }
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
