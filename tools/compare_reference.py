#!/usr/bin/env python3
"""Independent numpy computation of qvet compare's statistics (EVALS.md), written from the
definitions, not from the C code. It draws a small seeded case of FP32 logits for a reference R
and a candidate C (chunks x positions x vocab) and writes the logits, the targets and every
expected figure to tests/fixtures/compare_stats.json; tests/test_compare_stats.c feeds the same
logits to evals/compare_stats.c and compares.

    python3 tools/compare_reference.py > tests/fixtures/compare_stats.json
"""
import json
import sys

import numpy as np

SEED, K, N, V = 20251125, 4, 9, 37  # chunks, scored positions per chunk, vocab


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
    samples = np.asarray(samples, dtype=np.float64)
    mean = samples.mean()
    se = samples.std(ddof=1) / np.sqrt(len(samples))
    return mean, mean - 1.96 * se, mean + 1.96 * se


def main():
    rng = np.random.default_rng(SEED)
    lr = rng.normal(0.0, 2.0, size=(K, N, V)).astype(np.float32)
    lc = (lr + rng.normal(0.0, 0.4, size=(K, N, V))).astype(np.float32)
    lc[0, 0] = lr[0, 0]                        # one position where C == R exactly: KLD 0
    lc[1, 2] = lr[1, 2][::-1]                  # one position badly wrong: the max KLD
    lr[2, 3, :5] = lr[2, 3].max() + 1.0        # a 5-way tie in R's argmax (first index wins)
    y = rng.integers(0, V, size=(K, N)).astype(np.int32)

    pr, pc = log_softmax64(lr), log_softmax64(lc)
    kld = (np.exp(pr) * (pr - pc)).sum(axis=-1)                     # [K, N]
    dp = np.exp(np.take_along_axis(pc, y[..., None], -1))[..., 0] - \
        np.exp(np.take_along_axis(pr, y[..., None], -1))[..., 0]
    agree = (lr.argmax(-1) == lc.argmax(-1))
    nll_r = np.array([[nll32(lr[k, i], y[k, i]) for i in range(N)] for k in range(K)])
    nll_c = np.array([[nll32(lc[k, i], y[k, i]) for i in range(N)] for k in range(K)])

    mr, mc = nll_r.mean(1), nll_c.mean(1)
    ppl_r, ppl_c = ci(mr), ci(mc)
    ratio = ci(mc - mr)
    kmean = ci(kld.mean(1))
    top1 = ci(agree.mean(1))
    flat_k, flat_d = kld.reshape(-1), dp.reshape(-1)
    imax = int(flat_k.argmax())
    exp = {
        "ppl_ref": [float(np.exp(v)) for v in ppl_r],
        "ppl_cand": [float(np.exp(v)) for v in ppl_c],
        "ln_ppl_ratio": [float(v) for v in ratio],
        "kld_mean": [float(flat_k.mean()), float(kmean[1]), float(kmean[2])],
        "kld_median": float(np.percentile(flat_k, 50)),
        "kld_p90": float(np.percentile(flat_k, 90)),
        "kld_p99": float(np.percentile(flat_k, 99)),
        "kld_p99_9": float(np.percentile(flat_k, 99.9)),
        "kld_max": float(flat_k.max()),
        "kld_max_chunk": imax // N,
        "kld_max_offset": imax % N,
        "kld_max_token": int(y.reshape(-1)[imax]),
        "top1": [float(agree.mean()), float(top1[1]), float(top1[2])],
        "dp_mean": float(flat_d.mean()),
        "dp_rms": float(np.sqrt((flat_d ** 2).mean())),
        "dp_p1": float(np.percentile(flat_d, 1)),
        "dp_p99": float(np.percentile(flat_d, 99)),
        "kld": kld.tolist(),
        "delta_p": dp.tolist(),
        "top1_count": agree.sum(1).tolist(),
    }
    out = {
        "provenance": {
            "generator": "tools/compare_reference.py",
            "command": "python3 tools/compare_reference.py > tests/fixtures/compare_stats.json",
            "numpy": np.__version__,
            "seed": SEED,
            "note": "R ~ N(0, 2^2) FP32 logits; C = R + N(0, 0.4^2); chunk 0 pos 0 C == R; chunk 1 pos 2 C reversed; chunk 2 pos 3 a 5-way tie in R",
        },
        "chunks": K, "positions": N, "vocab": V,
        "ref_logits": [[[float(v) for v in row] for row in ch] for ch in lr],
        "cand_logits": [[[float(v) for v in row] for row in ch] for ch in lc],
        "targets": y.tolist(),
        "expected": exp,
    }
    json.dump(out, sys.stdout, indent=None)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
