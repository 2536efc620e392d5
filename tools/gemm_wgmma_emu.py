#!/usr/bin/env python3
# Host emulation of gpu/sm90a/gemm_wgmma.cu's index math, for changing it without a GPU: the packed
# W4 loads per warp (one uint4 per lane per k32 step), unpack_w4, the A-fragment assembly of the
# two m64 wgmma per k32 step (register order of the PTX ISA's 8-bit A fragment, or the swapped
# candidate), g128's group-byte words, the x stage layout (128-byte swizzle or the no-swizzle core
# matrices) as the cp.async writer lays it out and as the descriptor is assumed to read it, the
# stage ring, the accumulator layout and the epilogue's (m, n) of every register, against a
# plain integer GEMM. It mirrors the kernel's formulas, so a change to one must be made to the
# other; it proves the mapping under the stated reading of the PTX ISA, not the hardware's
# reading of the descriptor (that is test_gpu_wgmma's self-test on a device). Needs numpy.
# Prints one line per case and ALL OK / FAIL.
import sys

import numpy as np

rng = np.random.default_rng(7)
BT, WGS, BC, BK, STAGES, GROUP = 128, 2, 256, 128, 5, 12
STAGE_BYTES = BT * BK
M32 = 0x0F0F0F0F

# the kernel's candidates: (swz, lbo, sbo, kstep, swap_a)
CANDS = [(1, 16, 1024, 32, 0), (1, 16, 1024, 32, 1), (0, BT * 16, 128, 2 * BT * 16, 0), (0, 128, BT * 16, 2 * BT * 16, 0),
         (0, BT * 16, 128, 2 * BT * 16, 1), (0, 128, BT * 16, 2 * BT * 16, 1), (1, 1024, 16, 32, 0), (1, 1024, 16, 32, 1)]


def pack_w4(u, N, K):  # ref/qoq qv_w4_pack, docs/layout.md (as tools/gemm_decode_emu.py)
    pk = np.zeros(N * K // 2, np.uint8)
    for n in range(N):
        for k in range(K):
            tile = (n // 32) * (K // 32) + k // 32
            a, b, c = (n % 32) // 16, (n % 16) // 8, n % 8
            d, e, f = (k % 32) // 16, (k % 16) // 4, k % 4
            off = tile * 512 + 64 * c + 16 * e + 8 * d + 4 * b + f
            pk[off] |= (u[n, k] << 4) if a else u[n, k]
    return pk


def pack_groupbytes(src, N, G):  # qv_w4g128_pack_groupbytes: [G][N], position c*4+j of a block = channel j*8+c
    dst = np.zeros(G * N, np.uint8)
    for g in range(G):
        for nb in range(N // 32):
            for c in range(8):
                for j in range(4):
                    dst[g * N + nb * 32 + c * 4 + j] = src[nb * 32 + j * 8 + c, g]
    return dst


def words(b16):  # 16 bytes -> 4 uint32 (x, y, z, w)
    return [int(b16[4 * i]) | int(b16[4 * i + 1]) << 8 | int(b16[4 * i + 2]) << 16 | int(b16[4 * i + 3]) << 24 for i in range(4)]


def unpack_w4(w):  # gemm_w4a8_chn.cuh unpack_w4: b[i] = channel 8i + g
    x, y, z, ww = w
    return [[x & M32, z & M32], [y & M32, ww & M32], [(x >> 4) & M32, (z >> 4) & M32], [(y >> 4) & M32, (ww >> 4) & M32]]


def vsub4(a, b):
    return sum((((a >> (8 * i)) - (b >> (8 * i))) & 255) << (8 * i) for i in range(4))


def sbytes(w):  # uint32 -> 4 signed bytes
    return [((w >> (8 * i)) & 255) - 256 * (((w >> (8 * i)) & 255) > 127) for i in range(4)]


def x_off(swz, r, c):
    return r * 128 + ((c ^ (r & 7)) << 4) if swz else (c * BT + r) * 16


def read_B(smem, swz, lbo, sbo, start):
    # wgmma's K-major B (32 k x 128 tokens, 8-bit) as the descriptor is assumed to address it.
    # 128-byte swizzle: token n, k byte kb at start + (n // 8) * SBO + (n % 8) * 128 + kb, then
    # address bits [4:6] ^= bits [7:9] (the pattern repeats every 1024 bytes; atoms 1024-aligned).
    # No swizzle: 8x16-byte core matrices; (n, kb) at start + (kb // 16) * LBO + (n // 8) * SBO + (n % 8) * 16 + kb % 16.
    B = np.zeros((32, BT), np.int64)
    for n in range(BT):
        for kb in range(32):
            if swz:
                a = start + (n // 8) * sbo + (n % 8) * 128 + kb
                a = a ^ (((a >> 7) & 7) << 4)
            else:
                a = start + (kb // 16) * lbo + (n // 8) * sbo + (n % 8) * 16 + kb % 16
            if a < 0 or a >= len(smem):
                return None
            v = int(smem[a])
            B[kb, n] = v - 256 if v > 127 else v
    return B


def block_tile(b, M, N):  # the kernel's grouped raster: block -> (channel tile, token tile)
    CT, TT = (N + BC - 1) // BC, (M + BT - 1) // BT
    per = GROUP * TT
    g, r = b // per, b % per
    w = min(GROUP, CT - g * GROUP)
    return g * GROUP + r % w, r // w


def split_rule(M, N, K, slots=132, max_split=16, max_ws=64 << 20):  # gemm_launch.cu wgmma_split
    tiles = ((N + BC - 1) // BC) * ((M + BT - 1) // BT)
    KT = (K + BK - 1) // BK
    if tiles >= slots or KT < 4:
        return KT
    s = min((slots + tiles // 2) // tiles, max_split, KT // 2)
    while s > 1 and s * M * N * 4 > max_ws:
        s -= 1
    return KT if s <= 1 else (KT + s - 1) // s


def run(fmt, M, N, K, cand, pipe=1, split=False):
    swz, lbo, sbo, kstep, swap_a = cand
    DIST = STAGES - 2 if pipe else STAGES - 1
    KTALL = (K + BK - 1) // BK
    ktps = split_rule(M, N, K) if split else KTALL
    slices = (KTALL + ktps - 1) // ktps
    x = rng.integers(-127, 128, (M, K)).astype(np.int8)
    u = rng.integers(0, 16, (N, K)).astype(np.uint8)
    pk = pack_w4(u, N, K)
    if fmt == 'g128':
        G = K // 128
        s1 = rng.integers(1, 9, (N, G)).astype(np.int64)
        sz1 = (s1 * rng.integers(0, 16, (N, G))).astype(np.int64)
        w = u.astype(np.int64) * np.repeat(s1, 128, axis=1) - np.repeat(sz1, 128, axis=1)
        s1p, sz1p = pack_groupbytes(s1.astype(np.uint8), N, G), pack_groupbytes(sz1.astype(np.uint8), N, G)
    else:
        w = u.astype(np.int64)
    ref = x.astype(np.int64) @ w.T
    out = np.full((M, N), 0x5A5A5A5A, np.int64)
    xb = x.view(np.uint8)
    kt32 = K // 32
    CT, TT = (N + BC - 1) // BC, (M + BT - 1) // BT
    tiles = [block_tile(b, M, N) for b in range(CT * TT)]
    assert sorted(tiles) == [(c, t) for c in range(CT) for t in range(TT)], "raster does not cover each tile once"
    for (bx, by), z in [(t, z) for t in tiles for z in range(slices)]:
        if True:
            kt0 = z * ktps  # this block's K slice: stages [kt0, kt0 + KT)
            KT = min(KTALL, kt0 + ktps) - kt0
            assert KT >= 1
            m0 = by * BT
            smem = np.zeros(STAGES * STAGE_BYTES + 48 * 1024, np.uint8)  # + the probe's slack
            acc = {}  # (warp, lane, h) -> 64 INT32

            def load_x(kt, slot):
                for c in range(BT * BK // 16):
                    r, ch = c >> 3, c & 7
                    gm, gk = m0 + r, (kt0 + kt) * BK + ch * 16
                    o = slot * STAGE_BYTES + x_off(swz, r, ch)
                    smem[o:o + 16] = xb[gm, gk:gk + 16] if gm < M and gk < K else 0
            for s in range(min(DIST, KT)):
                load_x(s, s)
            for kt in range(KT):
                nk = kt + DIST
                # the slot refilled must not be the one read now (nor, pipelined, the one in flight)
                assert nk % STAGES != kt % STAGES and (not pipe or kt == 0 or nk % STAGES != (kt - 1) % STAGES)
                if nk < KT:
                    load_x(nk, nk % STAGES)  # (the kernel issues it after the barrier; same slot math)
                st = (kt % STAGES) * STAGE_BYTES
                for wg in range(WGS):
                    for ks in range(4):
                        A = [np.zeros((64, 32), np.int64), np.zeros((64, 32), np.int64)]
                        for wq in range(4):
                            warp = wg * 4 + wq
                            nb = bx * (BC // 32) + warp
                            for lane in range(32):
                                j = (kt0 + kt) * 4 + ks
                                if nb < N // 32 and j < kt32:
                                    base = (nb * kt32 + j) * 512 + lane * 16
                                    wv = words(pk[base:base + 16])
                                else:
                                    wv = [0, 0, 0, 0]
                                b = unpack_w4(wv)
                                if fmt == 'g128' and nb < N // 32:
                                    goff = (kt0 + kt) * N + nb * 32 + 4 * (lane >> 2)
                                    s1w = words(np.concatenate([s1p[goff:goff + 4], np.zeros(12, np.uint8)]))[0]
                                    szw = words(np.concatenate([sz1p[goff:goff + 4], np.zeros(12, np.uint8)]))[0]
                                    for i in range(4):
                                        sc, zz = (s1w >> (8 * i)) & 255, ((szw >> (8 * i)) & 255) * 0x01010101
                                        b[i] = [vsub4((b[i][0] * sc) & 0xFFFFFFFF, zz), vsub4((b[i][1] * sc) & 0xFFFFFFFF, zz)]
                                for h in range(2):
                                    a = [b[2 * h][0], b[2 * h][1] if swap_a else b[2 * h + 1][0],
                                         b[2 * h + 1][0] if swap_a else b[2 * h][1], b[2 * h + 1][1]]
                                    # PTX ISA, wgmma 8-bit A in registers (per warp 16 rows, rows 16*wq..):
                                    # a0 row g k 4t.., a1 row g+8 k 4t.., a2 row g k 16+4t.., a3 row g+8 k 16+4t..
                                    g, t = lane >> 2, lane & 3
                                    R = 16 * wq
                                    A[h][R + g, 4 * t:4 * t + 4] = sbytes(a[0])
                                    A[h][R + g + 8, 4 * t:4 * t + 4] = sbytes(a[1])
                                    A[h][R + g, 16 + 4 * t:20 + 4 * t] = sbytes(a[2])
                                    A[h][R + g + 8, 16 + 4 * t:20 + 4 * t] = sbytes(a[3])
                        B = read_B(smem, swz, lbo, sbo, st + ks * kstep)
                        if B is None:
                            return None
                        for h in range(2):
                            D = A[h] @ B  # 64 x 128
                            for wq in range(4):
                                for lane in range(32):
                                    g, t = lane >> 2, lane & 3
                                    key = (wg * 4 + wq, lane, h)
                                    d = acc.setdefault(key, [0] * 64)
                                    for jj in range(16):
                                        for hh in range(2):
                                            for e in range(2):
                                                d[4 * jj + 2 * hh + e] += int(D[16 * wq + g + 8 * hh, 8 * jj + 2 * t + e])
            # epilogue (store_tile): thread (warp, g, t): channel nb*32 + g + 8hh (+16 for acc1), token m0 + 8j + 2t + e
            for (warp, lane, h), d in acc.items():
                nb = bx * (BC // 32) + warp
                if nb >= N // 32:
                    continue
                nrow = nb * 32 + (lane >> 2) + 16 * h
                for jj in range(16):
                    for hh in range(2):
                        for e in range(2):
                            m, n = m0 + 8 * jj + 2 * (lane & 3) + e, nrow + 8 * hh
                            if m < M:  # slices add up exactly (the fix-up); z == 0 overwrites the poison
                                out[m, n] = d[4 * jj + 2 * hh + e] + (out[m, n] if z else 0)
    return int((out != ref).sum())


def main():
    ok = True
    cases = [('chn', 128, 256, 1024), ('chn', 70, 288, 1056), ('g128', 130, 96, 1024), ('chn', 260, 3328, 256)]
    for fmt, M, N, K in cases:
        for pipe, split in ((0, False), (1, False), (1, True)):
            bad = run(fmt, M, N, K, CANDS[0], pipe, split)
            sl = (K + BK - 1) // BK // split_rule(M, N, K) if split else 1
            print(f"{fmt:4} M={M} N={N} K={K} candidate 0, PIPE {pipe}, split {'rule' if split else 'off'}: {'OK' if bad == 0 else f'FAIL ({bad} wrong)'}")
            ok &= bad == 0
    # the raster alone on big grids (more channel tiles than one group, partial last group)
    for M, N in ((8192, 28672), (1024, 4096), (300, 1056), (64, 6144)):
        CT, TT = (N + BC - 1) // BC, (M + BT - 1) // BT
        ok_r = sorted(block_tile(b, M, N) for b in range(CT * TT)) == [(c, t) for c in range(CT) for t in range(TT)]
        print(f"raster M={M} N={N}: {'OK' if ok_r else 'FAIL'}")
        ok &= ok_r
    # the other candidates under the SAME assumed hardware reading: the self-test must be able to
    # tell them apart (each wrong one must give wrong numbers on its data, not pass by accident)
    for ci in range(1, len(CANDS)):
        # hardware reads as candidate 0 describes; the kernel writes/describes as candidate ci
        swz, lbo, sbo, kstep, swap_a = CANDS[ci]
        print(f"candidate {ci} {CANDS[ci]} under the same reading: ", end="")
        bad = run('chn', 128, 256, 256, CANDS[ci], 0)
        print("also consistent" if bad == 0 else (f"{bad} wrong" if bad is not None else "reads out of bounds"))
    print("ALL OK" if ok else "FAIL")
    return ok


if __name__ == '__main__':  # (tools/gemm_wgmma_ws_emu.py imports the helpers above)
    sys.exit(0 if main() else 1)
