#!/usr/bin/env python3
"""Goldens for ref-fp32 from an independent implementation: Hugging Face transformers'
LlamaForCausalLM in FP32 (TF32 off, eager attention), on fixed token sequences.

Writes OUT/seq_<len>.safetensors for each length:
  ids        I64 [len]          token ids (numpy PCG64(seed * 1000003 + len), uniform in [0, vocab))
  logits     F32 [rows, vocab]  all positions when len <= --all-upto, else the last --last ones
  logits_pos I64 [rows]         the position of each logits row
and, for the sequence of length --hidden-len only:
  embed      F32 [len, hidden]  block input of layer 0 (embedding output)
  residual.<l> F32 [len, hidden] residual stream after decoder layer l (a forward hook on the layer,
                                 so no final norm is mixed in, unlike output_hidden_states[-1])
plus OUT/manifest.json (producer, versions, date, command, tolerance basis, files).

Run where torch + transformers exist (CPU is fine; on a GPU TF32 is switched off):
  python3 tools/golden_transformers.py --model ../shared/models/qvet-tiny-llama --out golden/tiny-llama
"""
import argparse
import datetime
import hashlib
import json
import os
import platform
import sys

import numpy as np
import torch
import transformers
from safetensors.torch import save_file


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def safetensors_metadata(path):
    """The file header's __metadata__ (qvet synth records its preset and seed there), or None."""
    if not os.path.exists(path):
        return None
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        return json.loads(f.read(n)).get("__metadata__")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="HF model folder")
    ap.add_argument("--out", required=True, help="output folder, e.g. golden/tiny-llama")
    ap.add_argument("--lengths", default="1,5,64,512,2048")
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("--all-upto", type=int, default=5, help="store every position's logits up to this length")
    ap.add_argument("--last", type=int, default=64, help="logits rows kept for longer sequences")
    ap.add_argument("--hidden-len", type=int, default=64, help="length of the sequence whose per-layer states are stored")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()

    # FP32 means FP32: no TF32 in matmuls or convolutions, highest matmul precision.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)

    model = transformers.LlamaForCausalLM.from_pretrained(
        a.model, dtype=torch.float32, attn_implementation="eager").to(a.device).eval()
    cfg = model.config
    vocab, max_pos = cfg.vocab_size, cfg.max_position_embeddings
    os.makedirs(a.out, exist_ok=True)

    captured = {}

    def hook(layer_index):
        def fn(_module, _inputs, output):
            out = output[0] if isinstance(output, (tuple, list)) else output
            captured[layer_index] = out.detach().float().cpu()[0].contiguous()
        return fn

    files = []
    for n in [int(x) for x in a.lengths.split(",")]:
        if n > max_pos:
            print(f"skip length {n}: beyond max_position_embeddings {max_pos}", file=sys.stderr)
            continue
        rng = np.random.Generator(np.random.PCG64(a.seed * 1000003 + n))
        ids = torch.tensor(rng.integers(0, vocab, size=n), dtype=torch.int64)
        want_hidden = n == a.hidden_len
        handles = []
        captured.clear()
        if want_hidden:
            handles = [layer.register_forward_hook(hook(i)) for i, layer in enumerate(model.model.layers)]
            handles.append(model.model.embed_tokens.register_forward_hook(hook(-1)))
        with torch.no_grad():
            out = model(input_ids=ids[None].to(a.device), use_cache=False)
        for h in handles:
            h.remove()
        logits = out.logits[0].float().cpu()
        first = 0 if n <= a.all_upto else max(0, n - a.last)
        tensors = {
            "ids": ids.contiguous(),
            "logits": logits[first:].contiguous(),
            "logits_pos": torch.arange(first, n, dtype=torch.int64),
        }
        if want_hidden:
            tensors["embed"] = captured[-1]
            for i in range(cfg.num_hidden_layers):
                tensors[f"residual.{i}"] = captured[i]
        name = f"seq_{n}.safetensors"
        save_file(tensors, os.path.join(a.out, name))
        files.append({"file": name, "length": n, "logits_rows": n - first, "hidden_states": want_hidden,
                      "max_abs_logit": float(logits.abs().max())})
        print(f"{name}: {n} tokens, {n - first} logits rows{' + per-layer states' if want_hidden else ''}")

    manifest = {
        "producer": "tools/golden_transformers.py (transformers LlamaForCausalLM, FP32, eager attention, TF32 off)",
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
        "numpy_version": np.__version__,
        "python": platform.python_version(),
        "device": a.device if a.device == "cpu" else torch.cuda.get_device_name(0),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
        "model": {"path": os.path.abspath(a.model), "model.safetensors_sha256":
                  sha256(os.path.join(a.model, "model.safetensors"))
                  if os.path.exists(os.path.join(a.model, "model.safetensors")) else None,
                  "safetensors_metadata": safetensors_metadata(os.path.join(a.model, "model.safetensors"))},
        "ids": f"numpy PCG64(seed * 1000003 + length).integers(0, vocab_size, size=length), seed {a.seed}",
        "tolerance_basis": "docs/bounds.md: both sides are FP32 evaluations of the same formulas; "
                           "compare per tensor with qv_golden_compare against the depth bound "
                           "qv_golden_bound_rel(config) * max|reference| (probabilistic rounding model).",
        "layout": {"residual.<l>": "residual stream after decoder layer l (forward hook)",
                   "embed": "embedding output (block input of layer 0)",
                   "logits_pos": "position of each logits row"},
        "files": files,
    }
    with open(os.path.join(a.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
