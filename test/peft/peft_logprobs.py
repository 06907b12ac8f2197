"""Log-probs of completions under a GGUF base loaded by transformers, with and without a PEFT adapter.

Usage: python peft_logprobs.py BASE.gguf ADAPTER_DIR SEQS.json  ->  JSON {"base": [[...]], "lora": [[...]]}
SEQS.json holds [{"prompt": [ids], "completion": [ids]}]; each list gets the natural log-prob of every
completion token given the tokens before it (what the catrl trainer's logprobs() returns).
"""

import json
import os
import sys

import torch
from gguf import GGUFReader
from peft import PeftModel
from transformers import AutoConfig, AutoModelForCausalLM


def logprobs(model, seqs):
    out = []
    with torch.no_grad():
        for s in seqs:
            ids = torch.tensor([s["prompt"] + s["completion"]])
            logits = model(input_ids=ids).logits[0].float()
            lp = torch.log_softmax(logits, dim=-1)
            p = len(s["prompt"])
            out.append([lp[p - 1 + j, t].item() for j, t in enumerate(s["completion"])])
    return out


def main():
    base_path, adapter_dir, seqs_path = sys.argv[1:4]
    torch.set_num_threads(1)
    seqs = json.load(open(seqs_path))
    where = dict(pretrained_model_name_or_path=os.path.dirname(base_path), gguf_file=os.path.basename(base_path))
    config = AutoConfig.from_pretrained(**where)
    # llama.cpp writes "no padding token" as 0xFFFFFFFF; transformers would take it for a token id.
    if config.pad_token_id is not None and config.pad_token_id >= config.vocab_size:
        config.pad_token_id = None
    # transformers' GGUF mapping leaves Qwen 3's head_dim at its default (128): take the file's key_length.
    fields = GGUFReader(base_path).fields
    arch = bytes(fields["general.architecture"].parts[-1]).decode()
    key_length = fields.get(f"{arch}.attention.key_length")
    if key_length is not None and hasattr(config, "head_dim"):
        config.head_dim = int(key_length.parts[-1][0])
    model = AutoModelForCausalLM.from_pretrained(**where, config=config, torch_dtype=torch.float32)
    model.eval()
    base = logprobs(model, seqs)
    model = PeftModel.from_pretrained(model, adapter_dir)
    model.eval()
    print(json.dumps({"base": base, "lora": logprobs(model, seqs)}))


main()
