#!/usr/bin/env python3
"""Independent numpy computation of `qvet compare --ref-logits R --cand-logits C` (EVALS.md
definitions, docs/byo.md dump format), written from the definitions, not from the C code.

    python3 tools/compare_logits_reference.py score R C [--ids IDS] > figures.json
    python3 tools/compare_logits_reference.py pack DIR OUT --dtype f16|f32   # per-chunk folder -> one [k, ctx, V] file

R and C: a safetensors file or a folder of them (name order), each with `ids` I32 [ctx] or
[k, ctx] and `logits` [ctx, V] or [k, ctx, V] (ctx or ctx - 1 rows). F32 and F16 only (numpy has
no bfloat16). The whole dump is loaded: this is a check for small fixtures, not a tool for big
dumps. Needs numpy and safetensors (safetensors.numpy).
"""
import hashlib
import json
import os
import sys

import numpy as np
from safetensors.numpy import load_file, save_file


def chunks(path):
    files = [path] if os.path.isfile(path) else \
        sorted(os.path.join(path, f) for f in os.listdir(path) if f.endswith(".safetensors") and not f.startswith("."))
    for f in files:
        t = load_file(f)
        ids, lg = t["ids"], t["logits"]
        if ids.ndim == 1:
            ids, lg = ids[None], lg[None]
        for k in range(ids.shape[0]):
            yield f, ids[k], lg[k]


def log_softmax64(x):
    x = x.astype(np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - (m + np.log(np.exp(x - m).sum(axis=-1, keepdims=True)))


def nll32(x, y):
    """-log softmax(x)[y]: max subtracted, exp in FP32, sum in FP64 rounded to FP32, log in FP32 (EVALS.md)."""
    m = np.float32(x.max())
    s = np.exp((x - m).astype(np.float32)).astype(np.float64).sum()
    lse = np.float32(m + np.log(np.float32(s)))
    return -float(np.float32(x[y]) - lse)


def ci(samples):
    s = np.asarray(samples, dtype=np.float64)
    mean = s.mean()
    se = s.std(ddof=1) / np.sqrt(len(s))
    return [float(mean), float(mean - 1.96 * se), float(mean + 1.96 * se)]


def fnv1a64(ids):
    h = 1469598103934665603
    for b in np.asarray(ids, dtype="<i4").tobytes():
        h = ((h ^ b) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h


def score(ref, cand, ids_path=None):
    want = load_file(ids_path)["ids"] if ids_path else None
    kld, dp, agree, nr, nc, y_all, all_ids = [], [], [], [], [], [], []
    for c, ((fr, ir, lr), (fc, ic, lc)) in enumerate(zip(chunks(ref), chunks(cand))):
        if not np.array_equal(ir, ic):
            sys.exit("chunk %d: ids differ between %s and %s" % (c, fr, fc))
        if want is not None and not np.array_equal(ir, want[c]):
            sys.exit("chunk %d: ids differ from %s" % (c, ids_path))
        n = len(ir) - 1
        lr, lc = lr[:n].astype(np.float32), lc[:n].astype(np.float32)  # F16 -> F32 is exact
        if not (np.isfinite(lr).all() and np.isfinite(lc).all()):
            sys.exit("chunk %d: NaN/Inf in a dump" % c)
        y = ir[1:].astype(np.int64)
        pr, pc = log_softmax64(lr), log_softmax64(lc)
        kld.append((np.exp(pr) * (pr - pc)).sum(-1))
        dp.append(np.exp(pc[np.arange(n), y]) - np.exp(pr[np.arange(n), y]))
        agree.append(lr.argmax(-1) == lc.argmax(-1))  # first index on ties
        nr.append(np.mean([nll32(lr[i], y[i]) for i in range(n)]))
        nc.append(np.mean([nll32(lc[i], y[i]) for i in range(n)]))
        y_all.append(y)
        all_ids.append(ir)
    kld, dp, agree, y_all = np.array(kld), np.array(dp), np.array(agree), np.array(y_all)
    K, N = kld.shape
    fk, fd = kld.reshape(-1), dp.reshape(-1)
    imax = int(fk.argmax())
    ppl_r, ppl_c = ci(nr), ci(nc)
    return {
        "chunks": K, "positions": K * N, "ctx": N + 1,
        "ids_fnv1a64": fnv1a64(np.concatenate(all_ids)),
        "ppl_ref": [float(np.exp(v)) for v in ppl_r],
        "ppl_cand": [float(np.exp(v)) for v in ppl_c],
        "ln_ppl_ratio": ci(np.array(nc) - np.array(nr)),
        "kld_mean": [float(fk.mean())] + ci(kld.mean(1))[1:],
        "kld_median": float(np.percentile(fk, 50)),
        "kld_p90": float(np.percentile(fk, 90)),
        "kld_p99": float(np.percentile(fk, 99)),
        "kld_p99_9": float(np.percentile(fk, 99.9)),
        "kld_max": float(fk.max()),
        "kld_max_chunk": imax // N,
        "kld_max_offset": imax % N,
        "kld_max_token": int(y_all.reshape(-1)[imax]),
        "top1": [float(agree.mean())] + ci(agree.mean(1))[1:],
        "dp_mean": float(fd.mean()),
        "dp_rms": float(np.sqrt((fd ** 2).mean())),
        "dp_p1": float(np.percentile(fd, 1)),
        "dp_p99": float(np.percentile(fd, 99)),
    }


def sha256_files(path):
    h = hashlib.sha256()
    files = [path] if os.path.isfile(path) else sorted(os.path.join(path, f) for f in os.listdir(path))
    for f in files:
        with open(f, "rb") as fh:
            h.update(fh.read())
    return h.hexdigest()


def main(argv):
    if len(argv) >= 3 and argv[0] == "score":
        ids = argv[argv.index("--ids") + 1] if "--ids" in argv else None
        out = {"provenance": {"generator": "tools/compare_logits_reference.py", "numpy": np.__version__,
                              "ref": argv[1], "cand": argv[2], "ref_sha256": sha256_files(argv[1]),
                              "cand_sha256": sha256_files(argv[2])},
               "expected": score(argv[1], argv[2], ids)}
        json.dump(out, sys.stdout, indent=1)
        sys.stdout.write("\n")
    elif len(argv) >= 3 and argv[0] == "pack":
        dt = np.float16 if "--dtype" in argv and argv[argv.index("--dtype") + 1] == "f16" else np.float32
        cs = list(chunks(argv[1]))
        save_file({"ids": np.stack([c[1] for c in cs]).astype(np.int32),
                   "logits": np.stack([c[2] for c in cs]).astype(dt)}, argv[2],
                  metadata={"writer": "tools/compare_logits_reference.py pack"})
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
