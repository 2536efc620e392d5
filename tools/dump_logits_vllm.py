#!/usr/bin/env python3
"""Top-k log-probabilities from vLLM for the chunks of a `qvet dump-ids` file, and the statistics
that follow from them (docs/byo.md "vLLM"). Not run in CI; untested without a vLLM install.

vLLM's API does not return full logits: SamplingParams(prompt_logprobs=k) returns, for every
prompt position t >= 1, a dict {token_id: Logprob} holding the k most likely tokens under the
engine's full-vocabulary log-softmax AND the actual prompt token (so k or k + 1 entries).

    # dump (on the serving machine, once per engine/calibration):
    python3 tools/dump_logits_vllm.py dump --model M --ids ids.safetensors --k 20 --out DIR [vLLM args...]
    # compare two dumps:
    python3 tools/dump_logits_vllm.py report --ref DIR_R --cand DIR_C [--json F]

dump writes DIR/chunk_%06d.safetensors: `ids` I32 [ctx], `topk_ids` I32 [ctx-1, k],
`topk_logprobs` F32 [ctx-1, k] (row i predicts token i+1, sorted by decreasing log-probability),
`target_logprob` F32 [ctx-1] (log p(ids[i+1])). This is NOT the full-logit format
`qvet compare --ref-logits` reads (qvet refuses it: no `logits` tensor).

report prints, and labels:
  exact        ppl of R and C with their 95% intervals, paired ln(ppl_C/ppl_R), delta-p
               (from target_logprob), top-1 agreement (rank-1 entries, k >= 1);
  lower bound  KLD per position: with A = topk_R ∩ topk_C (both probabilities known) and
               B = the rest of the vocabulary, KLD >= sum_{v in A} p_R ln(p_R/p_C)
               + P_R(B) ln(P_R(B)/P_C(B)), P_X(B) = 1 - sum_{v in A} p_X(v) (the log-sum
               inequality: merging B into one outcome cannot increase KLD). No upper bound exists
               from top-k data (C may put arbitrarily little mass on R's tail).
The NLL is vLLM's own (its precision), not qvet's FP32 log-softmax: compare figures between two
vLLM dumps, not with qvet's full-logit figures at the last digit.
"""
import argparse
import json
import os
import sys

import numpy as np
from safetensors.numpy import load_file, save_file


def dump(a, extra):
    from vllm import LLM, SamplingParams
    ids = load_file(a.ids)["ids"]
    llm = LLM(model=a.model, **json.loads(a.llm_kwargs))
    sp = SamplingParams(max_tokens=1, prompt_logprobs=a.k, temperature=0.0)
    os.makedirs(a.out, exist_ok=True)
    for c in range(ids.shape[0]):
        path = os.path.join(a.out, "chunk_%06d.safetensors" % c)
        if os.path.exists(path):
            continue
        chunk = [int(t) for t in ids[c]]
        out = llm.generate({"prompt_token_ids": chunk}, sp, use_tqdm=False)[0]
        pl = out.prompt_logprobs  # [None, {id: Logprob}, ...]: position t scores token t
        n = len(chunk) - 1
        tid = np.zeros((n, a.k), np.int32)
        tlp = np.full((n, a.k), -np.inf, np.float32)
        tgt = np.zeros(n, np.float32)
        for i in range(n):
            d = pl[i + 1]
            tgt[i] = d[chunk[i + 1]].logprob
            top = sorted(((lp.rank, t, lp.logprob) for t, lp in d.items() if lp.rank is not None and lp.rank <= a.k))
            for j, (_, t, lp) in enumerate(top[: a.k]):
                tid[i, j], tlp[i, j] = t, lp
        save_file({"ids": ids[c].astype(np.int32), "topk_ids": tid, "topk_logprobs": tlp, "target_logprob": tgt},
                  path + ".tmp", metadata={"writer": "tools/dump_logits_vllm.py", "model": a.model, "k": str(a.k)})
        os.replace(path + ".tmp", path)


def files(d):
    return sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith(".safetensors"))


def ci(x):
    x = np.asarray(x, np.float64)
    se = x.std(ddof=1) / np.sqrt(len(x)) if len(x) > 1 else float("nan")
    return [float(x.mean()), float(x.mean() - 1.96 * se), float(x.mean() + 1.96 * se)]


def report(a):
    fr, fc = files(a.ref), files(a.cand)
    if len(fr) != len(fc):
        sys.exit("chunk counts differ: %s %d, %s %d" % (a.ref, len(fr), a.cand, len(fc)))
    nr, nc, dp, agree, kl = [], [], [], [], []
    for c, (pr, pc) in enumerate(zip(fr, fc)):
        R, C = load_file(pr), load_file(pc)
        if not np.array_equal(R["ids"], C["ids"]):
            sys.exit("chunk %d: ids differ between %s and %s" % (c, pr, pc))
        for t in (R, C):
            if not np.isfinite(t["target_logprob"]).all():
                sys.exit("chunk %d: NaN/Inf in target_logprob" % c)
        nr.append(-R["target_logprob"].astype(np.float64).mean())
        nc.append(-C["target_logprob"].astype(np.float64).mean())
        dp.append(np.exp(C["target_logprob"].astype(np.float64)) - np.exp(R["target_logprob"].astype(np.float64)))
        agree.append(R["topk_ids"][:, 0] == C["topk_ids"][:, 0])
        k = []
        for i in range(R["ids"].shape[0] - 1):
            r = dict(zip(R["topk_ids"][i].tolist(), np.exp(R["topk_logprobs"][i].astype(np.float64)).tolist()))
            q = dict(zip(C["topk_ids"][i].tolist(), np.exp(C["topk_logprobs"][i].astype(np.float64)).tolist()))
            A = [v for v in r if v in q and r[v] > 0]
            s = sum(r[v] * np.log(r[v] / q[v]) for v in A)
            br, bc = max(1.0 - sum(r[v] for v in A), 0.0), max(1.0 - sum(q[v] for v in A), 0.0)
            if br > 0:
                s += br * np.log(br / bc) if bc > 0 else float("inf")
            k.append(max(s, 0.0))
        kl.append(k)
    nr, nc = np.array(nr), np.array(nc)
    dpf, kf = np.concatenate(dp), np.array(kl).reshape(-1)
    res = {
        "exact": {"ppl_ref": [float(np.exp(v)) for v in ci(nr)], "ppl_cand": [float(np.exp(v)) for v in ci(nc)],
                  "ln_ppl_ratio": ci(nc - nr), "top1_agreement": [float(np.concatenate(agree).mean())] +
                  ci([g.mean() for g in agree])[1:], "delta_p": {"mean": float(dpf.mean()), "rms": float(np.sqrt((dpf ** 2).mean())),
                  "p1": float(np.percentile(dpf, 1)), "p99": float(np.percentile(dpf, 99))}},
        "lower_bound": {"kld_mean": float(kf.mean()), "kld_median": float(np.percentile(kf, 50)),
                        "kld_p99": float(np.percentile(kf, 99)), "kld_max": float(kf.max())},
        "note": "KLD figures are lower bounds from top-k log-probabilities (docs/byo.md); the rest are exact.",
    }
    print(json.dumps(res, indent=1))
    if a.json:
        with open(a.json + ".tmp", "w") as f:
            json.dump(res, f, indent=1)
        os.replace(a.json + ".tmp", a.json)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("dump")
    d.add_argument("--model", required=True)
    d.add_argument("--ids", required=True)
    d.add_argument("--out", required=True)
    d.add_argument("--k", type=int, default=20)
    d.add_argument("--llm-kwargs", default="{}", help="JSON of extra vllm.LLM arguments (quantization=..., dtype=...)")
    r = sub.add_parser("report")
    r.add_argument("--ref", required=True)
    r.add_argument("--cand", required=True)
    r.add_argument("--json")
    a, extra = ap.parse_known_args()
    dump(a, extra) if a.cmd == "dump" else report(a)


if __name__ == "__main__":
    main()
