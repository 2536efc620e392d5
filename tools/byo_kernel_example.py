#!/usr/bin/env python3
"""Bring your own kernel: QoQ kernels written in PyTorch, dumped for `qvet kernels --check`.

    python3 tools/byo_kernel_example.py --out DIR [--backend torch|numpy|both]
                                        [--plant PLANT | --plant-set] [--qvet build/qvet]
                                        [--no-check] [--seed N]

Quantizes and packs random data as qvet's docs say (NUMERICS.md; docs/layout.md for the packed
W4 weights and the g128 group bytes), runs the "kernels under test" below on it, writes DIR with
one safetensors file per case and DIR/manifest.json (docs/byo.md, "Kernel level"), then runs
`qvet kernels --check DIR` and exits with its exit code.

The kernels under test (the part a team replaces with its own Triton/CUTLASS/PyTorch code):
  - W4A8 g128 GEMM: unpack the packed nibbles, level-2 dequantization to INT8 (u*s1 - sz1),
    INT32 matmul, epilogue in FP32 ((s_a*s0)*acc) -> FP16; also with QServe's conventions
    (FP16 s_a, s2_zeros = -z*s1 as INT8) and with unpacked weights;
  - W4A8 per-channel GEMM: INT32 matmul on the codes, s_a*(s_w*acc - sz*rowsum) -> FP16;
  - W8A8 GEMM: (s_a*s_w)*acc -> FP16;
  - A8 per-token quantization (codes, FP32 scale, INT32 row sum);
  - KV4 quantization, per-token arrays and 16-token pages in QServe's placement;
  - fused producers: RMSNorm + A8 (sum of squares in FP32, in its own order: the manifest leaves
    "sumsq" at its default "fp32"; (w*x)*r; codes rint(y / s_a)) and SiLU*mul + A8
    (g * (1 / (1 + exp(-g))) * up, exp correctly rounded to FP32), gate/up as one gate_up
    [M, 2I] (FP16) and as two tensors (FP32). Orders and forms differ from qvet's reference on
    purpose: the check accepts any FP32 evaluation (docs/byo.md, "Fused producers").
Each is written twice, in PyTorch (`--backend torch`, the default) and in numpy (`--backend
numpy`, for machines without torch); `--backend both` runs both and requires byte-identical
dumps. Inputs are drawn with numpy from --seed, so every backend sees the same data.

--plant plants a bug in the kernels, to watch the check fail:
  zero_sign    the W4 kernels add the zero point instead of subtracting it (g128: u*s1 + sz1;
               per channel: + sz*rowsum);
  fp16_scales  the g128/W8A8 epilogues multiply s_a*s into FP16 before the accumulator (a
               plausible half-precision slip: the INT32 accumulators stay bit-exact, the FP16
               outputs leave the derived bound);
  eps_after_sqrt, rms_k_minus_1, trunc (RMSNorm + A8: 1/(sqrt(ms) + eps); the mean of squares
               over K - 1; codes truncated toward zero instead of rounded to nearest even);
  silu_of_up, amax_wrong_row (SiLU*mul + A8: silu(up) * gate; each row scaled by the previous
               row's amax).
--plant-set writes, instead of the normal cases, one case per fused plant (the fused case it
breaks, on the same inputs as the passing one): tests/fixtures/kcheck_plants.
Needs numpy and safetensors (and torch for the torch backend).
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
import sys

import numpy as np
from safetensors.numpy import save_file

f16, f32 = np.float16, np.float32

# ----------------------------------------------------------------------------------------------
# Offline quantization and packing (numpy; NUMERICS.md, docs/layout.md). Not under test: these
# produce the kernels' inputs, which `qvet kernels --check` takes as given.


def quant_a8(x, qserve=False):
    """x FP32 [M, K] -> codes INT8, s_a (FP32, or FP16 for QServe)."""
    amax = np.abs(x).max(axis=1).astype(f32)
    if qserve:
        amax = np.maximum(amax, f32(1e-6))
    zero = amax == 0
    inv = np.where(zero, f32(0), f32(127) / np.where(zero, f32(1), amax)).astype(f32)
    q = np.clip(np.rint(x * inv[:, None]), -128 if qserve else -127, 127).astype(np.int8)
    sa = np.where(zero, f32(1), amax / f32(127)).astype(f32)
    return q, (sa.astype(f16) if qserve else sa)


def quant_w4g128(w):
    """w FP32 [N, K] -> codes u [N, K], s0 FP16 [N], s1, z, sz1 UINT8 [N, K/128]."""
    N, K = w.shape
    s0 = (np.abs(w).max(axis=1) / f32(119)).astype(f16)
    s0 = np.where(s0 == 0, f16(1), s0)
    w8 = np.clip(np.rint(w / s0.astype(f32)[:, None]), -119, 119).astype(np.int32)
    g = w8.reshape(N, K // 128, 128)
    lo, hi = np.minimum(g.min(axis=2), 0), np.maximum(g.max(axis=2), 0)
    s1 = np.maximum(1, (hi - lo + 14) // 15)
    z = np.rint(-lo.astype(f32) / s1.astype(f32)).astype(np.int32)
    u = np.clip(np.rint(g.astype(f32) / s1[:, :, None].astype(f32)) + z[:, :, None], 0, 15)
    return (u.reshape(N, K).astype(np.uint8), s0, s1.astype(np.uint8), z.astype(np.uint8),
            (z * s1).astype(np.uint8))


def quant_w4pc(w):
    """w FP32 [N, K] -> codes u [N, K], s_w FP16 [N], sz = fp16(s_w*z) FP16 [N]."""
    lo, hi = np.minimum(w.min(axis=1), 0), np.maximum(w.max(axis=1), 0)
    sw = ((hi - lo) / f32(15)).astype(f16)
    sw = np.where(sw == 0, f16(1), sw)
    swf = sw.astype(f32)
    z = np.clip(np.rint(-lo / swf), 0, 15).astype(f32)
    u = np.clip(np.rint(w / swf[:, None]) + z[:, None], 0, 15).astype(np.uint8)
    return u, sw, (swf * z).astype(f16)


def quant_w8(w):
    sw = (np.abs(w).max(axis=1) / f32(127)).astype(f16)
    sw = np.where(sw == 0, f16(1), sw)
    return np.clip(np.rint(w / sw.astype(f32)[:, None]), -127, 127).astype(np.int8), sw


def packed_index(N, K):
    """Byte offset and nibble of every code (n, k) in docs/layout.md's tile layout."""
    n = np.arange(N)[:, None]
    k = np.arange(K)[None, :]
    nn, kk = n % 32, k % 32
    a, b, c = nn // 16, (nn // 8) % 2, nn % 8
    d, e, f = kk // 16, (kk // 4) % 4, kk % 4
    byte = ((n // 32) * (K // 32) + k // 32) * 512 + 64 * c + 16 * e + 8 * d + 4 * b + f
    return byte, np.broadcast_to(a, byte.shape)


def pack_w4(u):
    N, K = u.shape
    byte, nib = packed_index(N, K)
    out = np.zeros(N * K // 2, dtype=np.uint8)
    np.bitwise_or.at(out, byte.ravel(), (u.astype(np.uint8) << (4 * nib).astype(np.uint8)).ravel())
    return out.reshape(N, K // 2)


def group_perm(N):
    """Packed position p of the group bytes holds channel perm[p] (p = 4c + j <- 8j + c)."""
    p = np.arange(N)
    blk, q = p // 32, p % 32
    return blk * 32 + 8 * (q % 4) + q // 4


def pack_groupbytes(a):
    """logical [N, G] -> packed [G, N] (docs/layout.md)."""
    return np.ascontiguousarray(a[group_perm(a.shape[0]), :].T)


# ----------------------------------------------------------------------------------------------
# The kernels under test, in PyTorch.


def torch_kernels(plant):
    import torch

    def unpack_w4(packed, N, K):
        byte, nib = packed_index(N, K)
        flat = packed.reshape(-1).to(torch.int32)
        v = flat[torch.from_numpy(byte.astype(np.int64))]
        return (v >> (4 * torch.from_numpy(np.ascontiguousarray(nib)).to(torch.int32))) & 15

    def groupbytes(packed, N):
        """packed [G, N] -> logical [N, G]"""
        inv = torch.from_numpy(np.argsort(group_perm(N)))
        return packed.to(torch.int32).t()[inv, :]

    def epilogue_scaled(acc, sa, s):
        sc = sa.to(torch.float32)[:, None] * s.to(torch.float32)[None, :]
        if plant == "fp16_scales":
            sc = sc.to(torch.float16).to(torch.float32)
        return (sc * acc.to(torch.float32)).to(torch.float16)

    def w4a8_g128(x, sa, w, s0, s1, zeros, N, K, packed=True, qserve=False):
        u = unpack_w4(w, N, K) if packed else w.to(torch.int32)
        s1 = groupbytes(s1, N) if packed else s1.to(torch.int32)
        zeros = groupbytes(zeros, N) if packed else zeros.to(torch.int32)
        # sz1 = z*s1 (UINT8); QServe stores -z*s1 as INT8 (two's complement, modulo 256)
        sz1 = (-zeros) % 256 if qserve else zeros
        if plant == "zero_sign":
            sz1 = -sz1
        s1 = s1.repeat_interleave(128, dim=1)
        sz1 = sz1.repeat_interleave(128, dim=1)
        w8 = u * s1 - sz1  # level-2 dequantization to INT8
        acc = torch.matmul(x.to(torch.int32), w8.t().contiguous())
        return acc, epilogue_scaled(acc, sa, s0)

    def w4a8_chn(x, sa, rowsum, w, sw, sz, N, K):
        u = unpack_w4(w, N, K)
        acc = torch.matmul(x.to(torch.int32), u.t().contiguous())
        sgn = -1.0 if plant != "zero_sign" else 1.0
        t = sw.to(torch.float32)[None, :] * acc.to(torch.float32)
        c = sz.to(torch.float32)[None, :] * rowsum.to(torch.float32)[:, None]
        return acc, (sa[:, None] * (t + sgn * c)).to(torch.float16)

    def w8a8(x, sa, w, sw):
        acc = torch.matmul(x.to(torch.int32), w.to(torch.int32).t().contiguous())
        return acc, epilogue_scaled(acc, sa, sw)

    def a8(x):
        x = x.to(torch.float32)
        amax = x.abs().amax(dim=1)
        zero = amax == 0
        inv = torch.where(zero, torch.zeros_like(amax), 127.0 / torch.where(zero, torch.ones_like(amax), amax))
        q = torch.clamp(torch.round(x * inv[:, None]), -127, 127).to(torch.int8)  # round: half to even
        sa = torch.where(zero, torch.ones_like(amax), amax / 127.0)
        return q, sa, q.to(torch.int32).sum(dim=1, dtype=torch.int32)

    def kv4(x):
        """x FP16 [T, H, D] -> codes [T, H, D/2], scales, mins FP16 [T, H]."""
        v = x.to(torch.float32)
        lo, hi = v.amin(dim=2), v.amax(dim=2)
        s = ((hi - lo) / 15.0).to(torch.float16).to(torch.float32)
        const = s == 0
        s_div = torch.where(const, torch.ones_like(s), s)
        c = torch.clamp(torch.round((v - lo[..., None]) / s_div[..., None]), 0, 15).to(torch.int32)
        c = torch.where(const[..., None], torch.zeros_like(c), c)
        codes = (c[..., 0::2] | (c[..., 1::2] << 4)).to(torch.uint8)
        return codes, torch.where(const, torch.ones_like(s), s).to(torch.float16), lo.to(torch.float16)

    def a8_fused(y):
        """A8 of the kernel's own FP32 values: s_a = amax/127, codes rint(y / s_a)."""
        amax = y.abs().amax(dim=1)
        if plant == "amax_wrong_row":
            amax = torch.roll(amax, 1)
        zero = amax == 0
        # a tensor divisor: PyTorch's CPU division by a Python scalar multiplies by its reciprocal
        sa = torch.where(zero, torch.ones_like(amax), amax / torch.full_like(amax, 127.0))
        t = y / sa[:, None]
        q = torch.trunc(t) if plant == "trunc" else torch.round(t)
        q = torch.where(zero[:, None], torch.zeros_like(q), torch.clamp(q, -127, 127)).to(torch.int8)
        return q, sa, q.to(torch.int32).sum(dim=1, dtype=torch.int32)

    def rmsnorm_a8(x, w, eps):
        x, w = x.to(torch.float32), w.to(torch.float32)
        ss = torch.zeros(x.shape[0], dtype=torch.float32)
        for k in range(x.shape[1]):  # FP32, sequential: not the reference's FP64 sum
            ss = ss + x[:, k] * x[:, k]
        ms = ss / torch.full_like(ss, x.shape[1] - 1 if plant == "rms_k_minus_1" else x.shape[1])
        e = torch.tensor(eps, dtype=torch.float32)

        def sqrt(t):  # correctly rounded (PyTorch's FP32 CPU sqrt is not, at 2.15: 1 ulp off at times)
            return torch.sqrt(t.to(torch.float64)).to(torch.float32)
        r = 1.0 / (sqrt(ms) + e) if plant == "eps_after_sqrt" else 1.0 / sqrt(ms + e)
        return a8_fused((w[None, :] * x) * r[:, None])

    def silu_mul_a8(gate, up):
        g, u = gate.to(torch.float32), up.to(torch.float32)
        if plant == "silu_of_up":
            g, u = u, g
        e = torch.exp(-g.to(torch.float64)).to(torch.float32)  # exp rounded once to FP32
        return a8_fused((g * (1.0 / (1.0 + e))) * u)

    return dict(w4a8_g128=w4a8_g128, w4a8_chn=w4a8_chn, w8a8=w8a8, a8=a8, kv4=kv4, rmsnorm_a8=rmsnorm_a8,
                silu_mul_a8=silu_mul_a8, to=lambda a: torch.from_numpy(np.ascontiguousarray(a)),
                back=lambda t: t.numpy())


# ----------------------------------------------------------------------------------------------
# The same kernels in numpy (no torch on the machine; also a cross-check of the torch ones).


def numpy_kernels(plant):
    def unpack_w4(packed, N, K):
        byte, nib = packed_index(N, K)
        return (packed.reshape(-1)[byte].astype(np.int32) >> (4 * nib)) & 15

    def groupbytes(packed, N):
        return packed.astype(np.int32).T[np.argsort(group_perm(N)), :]

    def epilogue_scaled(acc, sa, s):
        sc = sa.astype(f32)[:, None] * s.astype(f32)[None, :]
        if plant == "fp16_scales":
            sc = sc.astype(f16).astype(f32)
        return (sc * acc.astype(f32)).astype(f16)

    def w4a8_g128(x, sa, w, s0, s1, zeros, N, K, packed=True, qserve=False):
        u = unpack_w4(w, N, K) if packed else w.astype(np.int32)
        s1 = groupbytes(s1, N) if packed else s1.astype(np.int32)
        zeros = groupbytes(zeros, N) if packed else zeros.astype(np.int32)
        sz1 = (-zeros) % 256 if qserve else zeros
        if plant == "zero_sign":
            sz1 = -sz1
        w8 = u * np.repeat(s1, 128, axis=1) - np.repeat(sz1, 128, axis=1)
        acc = (x.astype(np.int64) @ w8.T.astype(np.int64)).astype(np.int32)
        return acc, epilogue_scaled(acc, sa, s0)

    def w4a8_chn(x, sa, rowsum, w, sw, sz, N, K):
        u = unpack_w4(w, N, K)
        acc = (x.astype(np.int64) @ u.T.astype(np.int64)).astype(np.int32)
        sgn = f32(-1) if plant != "zero_sign" else f32(1)
        t = sw.astype(f32)[None, :] * acc.astype(f32)
        c = sz.astype(f32)[None, :] * rowsum.astype(f32)[:, None]
        return acc, (sa[:, None] * (t + sgn * c)).astype(f16)

    def w8a8(x, sa, w, sw):
        acc = (x.astype(np.int64) @ w.T.astype(np.int64)).astype(np.int32)
        return acc, epilogue_scaled(acc, sa, sw)

    def a8(x):
        q, sa = quant_a8(x.astype(f32))
        return q, sa, q.astype(np.int32).sum(axis=1).astype(np.int32)

    def kv4(x):
        v = x.astype(f32)
        lo, hi = v.min(axis=2), v.max(axis=2)
        s = ((hi - lo) / f32(15)).astype(f16).astype(f32)
        const = s == 0
        s_div = np.where(const, f32(1), s)
        c = np.clip(np.rint((v - lo[..., None]) / s_div[..., None]), 0, 15).astype(np.int32)
        c = np.where(const[..., None], 0, c)
        codes = (c[..., 0::2] | (c[..., 1::2] << 4)).astype(np.uint8)
        return codes, np.where(const, f32(1), s).astype(f16), lo.astype(f16)

    def a8_fused(y):
        amax = np.abs(y).max(axis=1)
        if plant == "amax_wrong_row":
            amax = np.roll(amax, 1)
        zero = amax == 0
        sa = np.where(zero, f32(1), amax / f32(127)).astype(f32)
        t = y / sa[:, None]
        q = np.trunc(t) if plant == "trunc" else np.rint(t)
        q = np.where(zero[:, None], f32(0), np.clip(q, -127, 127)).astype(np.int8)
        return q, sa, q.astype(np.int32).sum(axis=1).astype(np.int32)

    def rmsnorm_a8(x, w, eps):
        x, w = x.astype(f32), w.astype(f32)
        ss = np.zeros(x.shape[0], f32)
        for k in range(x.shape[1]):
            ss = ss + x[:, k] * x[:, k]
        ms = ss / f32(x.shape[1] - 1 if plant == "rms_k_minus_1" else x.shape[1])
        e = f32(eps)
        r = f32(1) / (np.sqrt(ms) + e) if plant == "eps_after_sqrt" else f32(1) / np.sqrt(ms + e)  # exact sqrt
        return a8_fused((w[None, :] * x) * r[:, None])

    def silu_mul_a8(gate, up):
        g, u = gate.astype(f32), up.astype(f32)
        if plant == "silu_of_up":
            g, u = u, g
        e = np.exp(-g.astype(np.float64)).astype(f32)
        return a8_fused((g * (f32(1) / (f32(1) + e))) * u)

    return dict(w4a8_g128=w4a8_g128, w4a8_chn=w4a8_chn, w8a8=w8a8, a8=a8, kv4=kv4, rmsnorm_a8=rmsnorm_a8,
                silu_mul_a8=silu_mul_a8, to=lambda a: np.ascontiguousarray(a), back=lambda a: np.asarray(a))


# ----------------------------------------------------------------------------------------------


def kv4_pages(codes, s, mn, page):
    """Per-token KV4 arrays -> pages: codes [H][page][D/2] | scales [H][page] | mins [H][page]."""
    T, H, half = codes.shape
    P = (T + page - 1) // page
    out = []
    for p in range(P):
        cb = np.zeros((H, page, half), np.uint8)
        sb = np.zeros((H, page), f16)
        mb = np.zeros((H, page), f16)
        t0, t1 = p * page, min(T, (p + 1) * page)
        cb[:, : t1 - t0] = codes[t0:t1].transpose(1, 0, 2)
        sb[:, : t1 - t0] = s[t0:t1].T
        mb[:, : t1 - t0] = mn[t0:t1].T
        out.append(np.concatenate([cb.ravel(), sb.view(np.uint8).ravel(), mb.view(np.uint8).ravel()]))
    return np.stack(out)


def make_cases(rng, K_, meta):
    """Draws inputs, runs the kernels (K_: the backend's kernels), returns [(manifest entry,
    {tensor name: array})]."""
    to, back = K_["to"], K_["back"]
    cases = []

    def acts(M, K, qserve=False):
        x = (rng.standard_normal((M, K)) * rng.uniform(0.5, 4.0, (M, 1))).astype(f32)
        return quant_a8(x, qserve)

    def weights(N, K):
        return (rng.standard_normal((N, K)) * 0.05 + rng.standard_normal((N, 1)) * 0.01).astype(f32)

    # W4A8 g128, packed, qvet conventions
    M, N, K = 5, 64, 256
    q, sa = acts(M, K)
    u, s0, s1, _, sz1 = quant_w4g128(weights(N, K))
    w, s1p, sz1p = pack_w4(u), pack_groupbytes(s1), pack_groupbytes(sz1)
    acc, y = K_["w4a8_g128"](to(q), to(sa), to(w), to(s0), to(s1p), to(sz1p), N, K)
    cases.append(({"name": "w4a8_g128 packed M=5 N=64 K=256", "op": "w4a8_g128", "shape": {"M": M, "N": N, "K": K},
                   "file": "w4a8_g128.safetensors"},
                  dict(x=q, s_a=sa, w=w, s0=s0, s1=s1p, sz1=sz1p, acc=back(acc), y=back(y))))

    # W4A8 g128 with QServe's conventions and QServe's tensor names (mapped in the manifest)
    M, N, K = 3, 32, 128
    q, sa16 = acts(M, K, qserve=True)
    u, s0, s1, z, sz1 = quant_w4g128(weights(N, K))
    s2z = ((-(z.astype(np.int32) * s1)) % 256).astype(np.uint8).view(np.int8)
    w, s1p, s2zp = pack_w4(u), pack_groupbytes(s1.view(np.int8)), pack_groupbytes(s2z)
    acc, y = K_["w4a8_g128"](to(q), to(sa16), to(w), to(s0), to(s1p), to(s2zp), N, K, qserve=True)
    cases.append(({"name": "w4a8_g128 qserve M=3 N=32 K=128", "op": "w4a8_g128", "layout": "qserve",
                   "shape": {"M": M, "N": N, "K": K}, "file": "w4a8_g128_qserve.safetensors",
                   "tensors": {"w": "qweight", "s0": "s1_scales", "s1": "s2_scales", "s2_zeros": "s2_zeros",
                               "s_a": "act_scales", "y": "out"}},
                  dict(x=q, act_scales=sa16, qweight=w, s1_scales=s0, s2_scales=s1p, s2_zeros=s2zp,
                       acc=back(acc), out=back(y))))

    # W4A8 g128, unpacked codes (no packing rule on N: 40 channels)
    M, N, K = 2, 40, 128
    q, sa = acts(M, K)
    u, s0, s1, _, sz1 = quant_w4g128(weights(N, K))
    acc, y = K_["w4a8_g128"](to(q), to(sa), to(u), to(s0), to(s1), to(sz1), N, K, packed=False)
    cases.append(({"name": "w4a8_g128 unpacked M=2 N=40 K=128", "op": "w4a8_g128", "weights": "unpacked",
                   "shape": {"M": M, "N": N, "K": K}, "file": "w4a8_g128_unpacked.safetensors"},
                  dict(x=q, s_a=sa, w=u, s0=s0, s1=s1, sz1=sz1, acc=back(acc), y=back(y))))

    # W4A8 per channel, packed; the INT32 row sum comes with the activations
    M, N, K = 5, 64, 128
    q, sa = acts(M, K)
    rowsum = q.astype(np.int32).sum(axis=1).astype(np.int32)
    u, sw, sz = quant_w4pc(weights(N, K))
    w = pack_w4(u)
    acc, y = K_["w4a8_chn"](to(q), to(sa), to(rowsum), to(w), to(sw), to(sz), N, K)
    cases.append(({"name": "w4a8_chn packed M=5 N=64 K=128", "op": "w4a8_chn", "shape": {"M": M, "N": N, "K": K},
                   "file": "w4a8_chn.safetensors"},
                  dict(x=q, s_a=sa, rowsum=rowsum, w=w, s_w=sw, sz=sz, acc=back(acc), y=back(y))))

    # W8A8
    M, N, K = 4, 32, 96
    q, sa = acts(M, K)
    w8, sw = quant_w8(weights(N, K))
    acc, y = K_["w8a8"](to(q), to(sa), to(w8), to(sw))
    cases.append(({"name": "w8a8 M=4 N=32 K=96", "op": "w8a8", "shape": {"M": M, "N": N, "K": K},
                   "file": "w8a8.safetensors"},
                  dict(x=q, s_a=sa, w=w8, s_w=sw, acc=back(acc), y=back(y))))

    # A8 per-token quantization of FP16 activations (row 2 all zero: the minimum-scale rule)
    M, K = 6, 256
    x = (rng.standard_normal((M, K)) * rng.uniform(0.1, 8.0, (M, 1))).astype(f16)
    x[2] = 0
    qa, saa, rsa = K_["a8"](to(x.astype(f32)))
    cases.append(({"name": "a8_quant M=6 K=256", "op": "a8_quant", "shape": {"M": M, "K": K},
                   "file": "a8_quant.safetensors"},
                  dict(x=x, q=back(qa), s_a=back(saa), rowsum=back(rsa))))

    # KV4 per-token arrays (token 3, head 1 constant: the minimum-scale rule)
    T, H, D = 5, 2, 32
    xk = (rng.standard_normal((T, H, D)) * 2).astype(f16)
    xk[3, 1] = f16(-0.75)
    codes, s, mn = (back(a) for a in K_["kv4"](to(xk)))
    cases.append(({"name": "kv4_quant T=5 H=2 D=32", "op": "kv4_quant", "shape": {"T": T, "H": H, "D": D},
                   "file": "kv4_quant.safetensors"},
                  dict(x=xk, codes=codes, scales=s, mins=mn)))

    # KV4 into 16-token pages (20 tokens: the second page is partly filled)
    T, H, D, page = 20, 2, 32, 16
    xk = (rng.standard_normal((T, H, D)) * 2).astype(f16)
    codes, s, mn = (back(a) for a in K_["kv4"](to(xk)))
    cases.append(({"name": "kv4_quant paged T=20 H=2 D=32 page=16", "op": "kv4_quant",
                   "shape": {"T": T, "H": H, "D": D, "page_size": page}, "file": "kv4_pages.safetensors"},
                  dict(x=xk, pages=kv4_pages(codes, s, mn, page))))
    cases += fused_cases(rng, K_)
    return cases


FUSED_PLANTS = {"eps_after_sqrt": 0, "rms_k_minus_1": 0, "trunc": 0, "silu_of_up": 1, "amax_wrong_row": 1}


def fused_cases(rng, K_):
    """The fused producers' cases (drawn after the others, so that adding them left the earlier
    cases' inputs unchanged)."""
    to, back = K_["to"], K_["back"]
    cases = []
    # RMSNorm + A8 on an FP32 residual stream: rows of different scales, one with a massive
    # channel, one so small that eps dominates its mean square (1e-6 vs 1e-5), one all zero
    M, K, eps = 5, 128, 1e-5
    x = (rng.standard_normal((M, K)) * rng.uniform(0.5, 4.0, (M, 1))).astype(f32)
    x[1, 7] = f32(60.0)
    x[2] *= f32(1e-3)
    x[4] = 0
    w = (1.0 + 0.2 * rng.standard_normal(K)).astype(f32)
    q, sa, rs = (back(a) for a in K_["rmsnorm_a8"](to(x), to(w), eps))
    cases.append(({"name": "rmsnorm_a8 M=5 K=128", "op": "rmsnorm_a8", "shape": {"M": M, "K": K}, "eps": eps,
                   "file": "rmsnorm_a8.safetensors"},
                  dict(x=x, w=w, q=q, s_a=sa, rowsum=rs)))
    # SiLU*mul + A8 from one FP16 gate_up [M, 2I], gate first (row 3: gate all zero)
    M, I = 4, 96
    gu = np.concatenate([rng.standard_normal((M, I)) * 2.0, rng.standard_normal((M, I))], axis=1).astype(f16)
    gu[3, :I] = 0
    q, sa, rs = (back(a) for a in K_["silu_mul_a8"](to(gu[:, :I]), to(gu[:, I:])))
    cases.append(({"name": "silu_mul_a8 gate_up M=4 I=96", "op": "silu_mul_a8", "shape": {"M": M, "I": I},
                   "file": "silu_mul_a8.safetensors"},
                  dict(gate_up=gu, q=q, s_a=sa, rowsum=rs)))
    # the same op from separate FP32 gate and up, under other tensor names (mapped), no row sum
    M, I = 3, 64
    g = (rng.standard_normal((M, I)) * 3.0).astype(f32)
    u = rng.standard_normal((M, I)).astype(f32)
    q, sa, _ = (back(a) for a in K_["silu_mul_a8"](to(g), to(u)))
    cases.append(({"name": "silu_mul_a8 split M=3 I=64", "op": "silu_mul_a8", "shape": {"M": M, "I": I},
                   "file": "silu_mul_a8_split.safetensors",
                   "tensors": {"gate": "mlp.gate", "up": "mlp.up", "q": "act.q", "s_a": "act.scale"}},
                  {"mlp.gate": g, "mlp.up": u, "act.q": q, "act.scale": sa}))
    return cases


def plant_set(seed, kernels):
    """One case per fused plant: the fused case it breaks, on the inputs of the passing run."""
    cases = []
    for p, idx in FUSED_PLANTS.items():
        rng = np.random.default_rng(seed)
        entry, tensors = make_cases(rng, kernels(p), None)[-3 + idx]
        entry = dict(entry, name=f"plant {p}: {entry['name']}", file=f"plant_{p}.safetensors")
        cases.append((entry, tensors))
    return cases


def write_dir(out, cases, meta):
    os.makedirs(out, exist_ok=True)
    for entry, tensors in cases:
        save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, os.path.join(out, entry["file"]),
                  metadata={"producer": "tools/byo_kernel_example.py"})
    manifest = {"schema": "qvet.kernel-check/1", "producer": meta, "cases": [e for e, _ in cases]}
    tmp = os.path.join(out, "manifest.json.tmp")
    with open(tmp, "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    os.replace(tmp, os.path.join(out, "manifest.json"))


def versions(backend):
    import safetensors
    v = {"python": platform.python_version(), "numpy": np.__version__, "safetensors": safetensors.__version__}
    if backend in ("torch", "both"):
        import torch
        v["torch"] = torch.__version__
    return v


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--backend", choices=["torch", "numpy", "both"], default="torch")
    ap.add_argument("--plant", choices=["zero_sign", "fp16_scales"] + list(FUSED_PLANTS))
    ap.add_argument("--plant-set", action="store_true", help="one case per fused plant (tests/fixtures/kcheck_plants)")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--qvet", default=os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build", "qvet")))
    ap.add_argument("--no-check", action="store_true", help="write DIR only")
    a = ap.parse_args()
    if a.plant and a.plant_set:
        ap.error("--plant and --plant-set exclude each other")
    meta = {"tool": "tools/byo_kernel_example.py", "backend": a.backend, "seed": a.seed,
            "plant": "set" if a.plant_set else a.plant}
    backends = ["torch", "numpy"] if a.backend == "both" else [a.backend]
    dumps = []
    for b in backends:
        kernels = torch_kernels if b == "torch" else numpy_kernels
        if a.plant_set:
            dumps.append(plant_set(a.seed, kernels))
        else:
            dumps.append(make_cases(np.random.default_rng(a.seed), kernels(a.plant), meta))
    if len(dumps) == 2:  # the two implementations must agree byte for byte
        for (e, t), (_, n) in zip(*dumps):
            for k in t:
                if t[k].dtype != n[k].dtype or t[k].tobytes() != n[k].tobytes():
                    sys.exit(f"torch and numpy kernels differ: case '{e['name']}', tensor '{k}'")
        print(f"torch and numpy kernels agree byte for byte on {len(dumps[0])} cases")
    write_dir(a.out, dumps[0], meta)
    with open(os.path.join(a.out, "provenance.json"), "w") as f:
        json.dump({"command": " ".join(["python3", "tools/byo_kernel_example.py"] + sys.argv[1:]),
                   "versions": versions(a.backend),
                   "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}, f, indent=1)
        f.write("\n")
    print(f"wrote {len(dumps[0])} cases to {a.out}")
    if a.no_check:
        return 0
    cmd = [a.qvet, "kernels", "--check", a.out]
    print("$ " + " ".join(cmd), flush=True)
    return subprocess.call(cmd)


if __name__ == "__main__":
    sys.exit(main())
