#!/usr/bin/env python3
"""Full-vocabulary logits from Hugging Face transformers, in the dump format that
`qvet compare --ref-logits/--cand-logits` reads (docs/byo.md). Not run in CI.

    qvet dump-ids --model DIR --text FILE --ctx 2048 --out ids.safetensors
    python3 tools/dump_logits_transformers.py --model DIR --ids ids.safetensors --out OUTDIR \
        [--dtype f32|f16|bf16] [--device cpu|cuda] [--torch-dtype float32|float16|bfloat16]

Writes OUTDIR/chunk_%06d.safetensors, each with `ids` I32 [ctx] (the chunk, unchanged) and
`logits` [ctx, vocab] (default F32). Each chunk is one forward pass from an empty cache: no BOS
is added (the ids file already holds the tokens exactly as qvet scores them). Existing chunk
files are kept (rerun to resume).
"""
import argparse
import os

import numpy as np
import torch
from safetensors.numpy import load_file, save_file
from transformers import AutoModelForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--ids", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--dtype", default="f32", choices=["f32", "f16", "bf16"])
    ap.add_argument("--torch-dtype", default="float32")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = ap.parse_args()
    ids = load_file(a.ids)["ids"]
    model = AutoModelForCausalLM.from_pretrained(a.model, torch_dtype=getattr(torch, a.torch_dtype)).to(a.device).eval()
    os.makedirs(a.out, exist_ok=True)
    for c in range(ids.shape[0]):
        path = os.path.join(a.out, "chunk_%06d.safetensors" % c)
        if os.path.exists(path):
            continue
        with torch.no_grad():
            x = torch.from_numpy(ids[c].astype(np.int64))[None].to(a.device)
            lg = model(input_ids=x, use_cache=False).logits[0].float().cpu()
        if a.dtype == "bf16":  # numpy has no bfloat16: store the raw bits via torch's safetensors writer
            from safetensors.torch import save_file as save_torch
            save_torch({"ids": torch.from_numpy(ids[c].astype(np.int32)), "logits": lg.to(torch.bfloat16)}, path + ".tmp",
                       metadata={"writer": "tools/dump_logits_transformers.py", "model": a.model})
        else:
            save_file({"ids": ids[c].astype(np.int32), "logits": lg.numpy().astype(np.float16 if a.dtype == "f16" else np.float32)},
                      path + ".tmp", metadata={"writer": "tools/dump_logits_transformers.py", "model": a.model})
        os.replace(path + ".tmp", path)  # atomic: an interrupted run never leaves half a chunk
        print("chunk %d/%d" % (c + 1, ids.shape[0]), flush=True)


if __name__ == "__main__":
    main()
