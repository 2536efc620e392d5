#!/usr/bin/env python3
# Host emulation of gpu/sm90a/gemm_wgmma_ws.cu (the warp-specialized wgmma W4A8 kernel), for
# changing it without a GPU. It mirrors the kernel's formulas (a change to one must be made to the
# other) and checks them against a plain integer GEMM:
#  * the producer: packed W4 loads per producer warp (blocks pw and pw + 4, one uint4 per lane per
#    k32 step), unpack_w4 / g128 __vsub4 (the helpers of tools/gemm_wgmma_emu.py), the A row
#    permutation a_row(q, i, g) and the 128-byte swizzle of its 32-bit stores, the cp.async x
#    chunks (zero-filled outside [M) x [K));
#  * the consumers: A and B read through the descriptor (start, SBO 1024, mode 1: the PTX ISA
#    reading gemm_wgmma_emu.py assumes for B and the device confirmed for B), the m64 tiles of
#    each consumer warpgroup, the accumulator fragment map and each_acc's (m, n) of every register,
#    the split-K sum;
#  * the ring: full / empty mbarriers with the kernel's counts (128 producer arrivals, 8 consumer
#    warp arrivals), the slot k % S and parity (k / S) & 1 of every wait, run as warps interleaved
#    in a random order (seeded), with cp.async data landing at issue or as late as the
#    producer's wait_group, and each warpgroup's wgmma reading shared memory at a random moment
#    between its issue by all 4 warps and the wait_group that retires it. A wait that succeeds on a
#    phase other than the one it means (parity aliasing), a read of a slot before its data landed
#    or after it was refilled (wrong numbers), or no runnable warp left (deadlock) is reported.
# It proves the mapping and the protocol under the stated reading of the PTX ISA, not the
# hardware's reading of the A descriptor (that is tests/test_gpu_wgmma.c on a device).
# Planted bugs (--plant NAME, or all of them with --plant-all, each expected to be DETECTED):
#   swizzle  the producer's A stores XOR the chunk with (row + 1) & 7 instead of row & 7
#   parity   consumers wait on full with the opposite parity
#   empty1   the empty barrier expects 1 arrival instead of 8 (slot refilled while still read)
#   stages2  a ring of 2 slots (the late publication then deadlocks: needs >= 3)
#   arow     A row permutation without the (q & 3) term (rows of two warps collide)
# Needs numpy. Prints one line per case and ALL OK / FAIL.
import argparse
import os
import random
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gemm_wgmma_emu import (BC, BK, BT, block_tile, pack_groupbytes, pack_w4, sbytes, split_rule, unpack_w4,  # noqa: E402
                            vsub4, words)

PROD_THREADS, CONS_WARPS = 128, 8
LAUNCH_REGS, PROD_REGS, CONS_REGS = 168, 104, 200  # gemm_wgmma_ws.cu kLaunchRegs, kProdRegs, kConsRegs
A_BYTES, B_BYTES = BC * BK, BT * BK  # 32 KB, 16 KB per slot
SLOT = A_BYTES + B_BYTES


class Bug:
    name = None


def a_row(q, i, g):
    if Bug.name == 'arow':
        return 128 * (q >> 2) + 64 * (i >> 1) + 8 * (i & 1) + g
    return 128 * (q >> 2) + 64 * (i >> 1) + 16 * (q & 3) + 8 * (i & 1) + g


def sw(row, chunk):  # byte offset of a row's 16-byte chunk under the 128-byte swizzle
    return row * 128 + ((chunk ^ (row & 7)) << 4)


def read_desc(smem, start, rows):
    # K-major operand, 128-byte swizzle, SBO 1024 (PTX ISA reading, as gemm_wgmma_emu.read_B):
    # (row, kb) at start + (row // 8) * 1024 + (row % 8) * 128 + kb, then bits [4:6] ^= bits [7:9]
    r = np.arange(rows)[:, None]
    kb = np.arange(32)[None, :]
    a = start + (r // 8) * 1024 + (r % 8) * 128 + kb
    a = a ^ (((a >> 7) & 7) << 4)
    return smem[a].view(np.int8).astype(np.int64)  # rows x 32


class MBar:
    def __init__(self, count, name):
        self.count, self.pending, self.phase, self.name = count, count, 0, name

    def arrive(self):
        self.pending -= 1
        assert self.pending >= 0
        if self.pending == 0:
            self.phase += 1
            self.pending = self.count

    def try_wait(self, parity, meant):
        # true when the phase with this parity has completed (the current phase's parity differs);
        # `meant` = the phase number the kernel's comment says this wait is for: success on any
        # other completed phase is parity aliasing (two phases apart), reported as a protocol error
        ok = (self.phase & 1) != parity
        if ok and self.phase != meant + 1:
            raise ProtocolError(f"{self.name}: wait for phase {meant} (parity {parity}) passed at phase {self.phase}")
        return ok


class ProtocolError(Exception):
    pass


def run_block(p, bx, by, z, ktps, S, rnd, out):
    """One block (channel tile bx, token tile by, K slice z): the roles interleaved; adds its
    accumulators into out (the split-K sum) by each_acc's map."""
    M, N, K = p['M'], p['N'], p['K']
    KTALL = (K + BK - 1) // BK
    kt0 = z * ktps
    KT = min(KTALL, kt0 + ktps) - kt0
    assert KT >= 1
    m0 = by * BT
    kt32 = K // 32
    smem = np.full(S * SLOT, 0xEE, np.uint8)  # garbage: unwritten bytes are not zero
    full = [MBar(PROD_THREADS, f"full[{s}]") for s in range(S)]
    empty = [MBar(1 if Bug.name == 'empty1' else CONS_WARPS, f"empty[{s}]") for s in range(S)]
    acc = {}  # (consumer warpgroup c, m64 tile hT) -> 64 x 128 INT sums
    pending_cp = []  # (group k, producer warp, dst offset, 16 bytes)
    groups = {0: [], 1: []}  # consumer warpgroup -> list of [k, issued warps set, executed]
    xb = p['x'].view(np.uint8)

    def land(pred):
        keep = []
        for it in pending_cp:
            if pred(it):
                smem[it[2]:it[2] + 16] = it[3]
            else:
                keep.append(it)
        pending_cp[:] = keep

    def producer(pw):
        wvals = {}

        def load_stage(kt):  # the kernel's load_stage: weights + g128 words of absolute stage kt
            for j in range(2):
                q = pw + 4 * j
                nb = bx * (BC // 32) + q
                nv = nb < N // 32
                for lane in range(32):
                    ws = []
                    for ks in range(4):
                        jj = kt * 4 + ks
                        if nv and jj < kt32:
                            base = (nb * kt32 + jj) * 512 + lane * 16
                            ws.append(words(p['pk'][base:base + 16]))
                        else:
                            ws.append([0, 0, 0, 0])
                    s1w = szw = 0
                    if p['g128'] and nv:
                        goff = kt * N + nb * 32 + 4 * (lane >> 2)
                        s1w = words(np.concatenate([p['s1p'][goff:goff + 4], np.zeros(12, np.uint8)]))[0]
                        szw = words(np.concatenate([p['sz1p'][goff:goff + 4], np.zeros(12, np.uint8)]))[0]
                    wvals[(j, lane)] = (ws, s1w, szw)
        load_stage(kt0)
        for k in range(KT):
            slot = k % S
            if k >= S:
                n = k // S
                yield ('wait', lambda e=empty[slot], par=(n & 1) ^ 1, meant=n - 1: e.try_wait(par, meant))
            base = slot * SLOT
            # x copies: thread pt = 32 pw + lane, chunks c = pt + 128 i
            for lane in range(32):
                pt = 32 * pw + lane
                for i in range(BT * (BK // 16) // PROD_THREADS):
                    c = pt + i * PROD_THREADS
                    r, ch = c >> 3, c & 7
                    gm, gk = m0 + r, (kt0 + k) * BK + ch * 16
                    data = xb[gm, gk:gk + 16].copy() if gm < M and gk < K else np.zeros(16, np.uint8)
                    dst = base + A_BYTES + sw(r, ch)
                    if rnd.random() < 0.5:
                        smem[dst:dst + 16] = data  # landed at once
                    else:
                        pending_cp.append((k, pw, dst, data))  # lands by the wait_group at the latest
            yield ('step', None)
            # dequantize stage k into the A part
            for j in range(2):
                q = pw + 4 * j
                for lane in range(32):
                    g, e = lane >> 2, lane & 3
                    ws, s1w, szw = wvals[(j, lane)]
                    for ks in range(4):
                        b = unpack_w4(ws[ks])
                        if p['g128']:
                            for i in range(4):
                                sc, zz = (s1w >> (8 * i)) & 255, ((szw >> (8 * i)) & 255) * 0x01010101
                                b[i] = [vsub4((b[i][0] * sc) & 0xFFFFFFFF, zz), vsub4((b[i][1] * sc) & 0xFFFFFFFF, zz)]
                        for i in range(4):
                            row = a_row(q, i, g)
                            for hk in range(2):
                                ch = 2 * ks + hk
                                off = (row * 128 + ((ch ^ ((row + 1) & 7)) << 4)) if Bug.name == 'swizzle' else sw(row, ch)
                                off += base + 4 * e
                                smem[off:off + 4] = np.frombuffer(int(b[i][hk]).to_bytes(4, 'little'), np.uint8)
            yield ('step', None)
            if k + 1 < KT:
                load_stage(kt0 + k + 1)
            if k >= 1:  # wait_group 1: this warp's groups <= k - 1 landed; fence; 32 arrivals
                land(lambda it, pw=pw, k=k: it[1] == pw and it[0] <= k - 1)
                for _ in range(32):
                    full[(k - 1) % S].arrive()
            yield ('step', None)
        land(lambda it, pw=pw: it[1] == pw)
        for _ in range(32):
            full[(KT - 1) % S].arrive()

    def execute(c, grp):  # warpgroup c's wgmma of stage k (8 of them) read shared memory now
        k = grp[0]
        st = (k % S) * SLOT
        for hT in range(2):
            for ks in range(4):
                A = read_desc(smem, st + (128 * c + 64 * hT) * 128 + 32 * ks, 64)  # 64 x 32
                B = read_desc(smem, st + A_BYTES + 32 * ks, BT)  # 128 tokens x 32
                # the m64 tile's 64 x 128 sums; the fragment map (which thread register holds
                # which (row, token)) is linear, so it is applied once, in the epilogue
                acc[(c, hT)] = acc.get((c, hT), 0) + A @ B.T
        grp[2] = True

    def consumer(c, w):
        for k in range(KT):
            slot = k % S
            n = k // S
            par = (n & 1) ^ 1 if Bug.name == 'parity' else n & 1
            yield ('wait', lambda f=full[slot], par=par, n=n: f.try_wait(par, n))
            # issue (collective: the group executes once all 4 warps issued it)
            gl = groups[c]
            grp = next((x for x in gl if x[0] == k), None)
            if grp is None:
                grp = [k, set(), False]
                gl.append(grp)
            grp[1].add(w)
            yield ('step', None)
            # wait_group 1: every group of this warpgroup before k executed
            yield ('wait', lambda gl=gl, k=k: all(x[2] for x in gl if x[0] < k))
            if k >= 1:
                empty[(k - 1) % S].arrive()
        yield ('wait', lambda gl=gl: all(x[2] for x in gl))

    gens = [('p', pw, producer(pw)) for pw in range(4)] + [('c', (c, w), consumer(c, w)) for c in range(2) for w in range(4)]
    waiting = {}  # index -> predicate
    live = list(range(len(gens)))
    while live or any(not x[2] for c in (0, 1) for x in groups[c]):
        choices = [i for i in live if i not in waiting or waiting[i]()]
        ready_groups = [(c, x) for c in (0, 1) for x in groups[c] if len(x[1]) == 4 and not x[2]]
        if not choices and not ready_groups:
            raise ProtocolError("DEADLOCK: no warp can run (" + ", ".join(
                f"{gens[i][0]}{gens[i][1]}" for i in live) + ")")
        if ready_groups and (not choices or rnd.random() < 0.3):
            c, x = rnd.choice(ready_groups)
            execute(c, x)
            continue
        i = rnd.choice(choices)
        waiting.pop(i, None)
        try:
            kind, pred = next(gens[i][2])
            if kind == 'wait':
                waiting[i] = pred
        except StopIteration:
            live.remove(i)
    assert not pending_cp
    # epilogue: thread (consumer c, warp w, lane) holds acc0 / acc1 (m64 tile hT = 0 / 1); the
    # wgmma m64nN .s32 accumulator layout: d[4j + 2hh + e] = (tile row 16w + g + 8hh, token 8j + 2t + e);
    # each_acc: that register is output (m0 + 8j + 2t + e, nrow + 8hh), nrow = 32 nb + g (+16 for acc1)
    for (c, hT), D in acc.items():
        for w in range(4):
            nb = bx * (BC // 32) + 4 * c + w
            if nb >= N // 32:
                continue
            for lane in range(32):
                g, t = lane >> 2, lane & 3
                d = [0] * 64
                for jj in range(16):
                    for hh in range(2):
                        for e in range(2):
                            d[4 * jj + 2 * hh + e] = int(D[16 * w + g + 8 * hh, 8 * jj + 2 * t + e])
                nrow = nb * 32 + g + 16 * hT
                for jj in range(16):
                    for hh in range(2):
                        for e in range(2):
                            m, n = m0 + 8 * jj + 2 * t + e, nrow + 8 * hh
                            if m < M:
                                out[m, n] += d[4 * jj + 2 * hh + e]


def make_problem(fmt, M, N, K, rng):
    x = rng.integers(-127, 128, (M, K)).astype(np.int8)
    u = rng.integers(0, 16, (N, K)).astype(np.uint8)
    p = {'M': M, 'N': N, 'K': K, 'x': x, 'pk': pack_w4(u, N, K), 'g128': fmt == 'g128'}
    if fmt == 'g128':
        G = K // 128
        s1 = rng.integers(1, 9, (N, G)).astype(np.int64)
        sz1 = (s1 * rng.integers(0, 16, (N, G))).astype(np.int64)
        w = u.astype(np.int64) * np.repeat(s1, 128, axis=1) - np.repeat(sz1, 128, axis=1)
        p['s1p'], p['sz1p'] = pack_groupbytes(s1.astype(np.uint8), N, G), pack_groupbytes(sz1.astype(np.uint8), N, G)
    else:
        w = u.astype(np.int64)
    p['ref'] = x.astype(np.int64) @ w.T
    return p


def run_case(fmt, M, N, K, ktps=None, S=4, seed=1):
    """wrong-accumulator count (0 = bit-exact) or a ProtocolError message"""
    rng = np.random.default_rng(seed)
    rnd = random.Random(seed)
    p = make_problem(fmt, M, N, K, rng)
    KTALL = (K + BK - 1) // BK
    if ktps is None:
        ktps = KTALL
    slices = (KTALL + ktps - 1) // ktps
    CT, TT = (N + BC - 1) // BC, (M + BT - 1) // BT
    out = np.zeros((M, N), np.int64)
    try:
        for b in range(CT * TT):
            bx, by = block_tile(b, M, N)
            for z in range(slices):
                run_block(p, bx, by, z, ktps, S, rnd, out)
    except ProtocolError as e:
        return str(e)
    return int((out != p['ref']).sum())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--plant', choices=['swizzle', 'parity', 'empty1', 'stages2', 'arow'])
    ap.add_argument('--plant-all', action='store_true', help='run every planted bug; each must be detected')
    ap.add_argument('--quick', action='store_true')
    a = ap.parse_args()
    # (fmt, M, N, K, ktps or None, seeds): ring wraps (8 and 9 stages), K tail (1056: a 32-wide
    # last stage), token tails (70, 130: tiles partly beyond M), channel tail (288: a second
    # channel tile with one valid 32-channel block; 96: three), split-K slices of 1, 2 and 3
    # stages (the last one shorter), the host's split rule
    cases = [('chn', 128, 256, 1024, None, (1, 2)), ('chn', 70, 288, 1056, None, (3,)), ('g128', 130, 96, 1024, None, (4,)),
             ('chn', 64, 256, 640, 2, (5,)), ('g128', 100, 256, 640, 1, (6,)), ('chn', 128, 256, 896, 3, (7,)),
             ('g128', 64, 256, 1024, split_rule(64, 256, 1024), (8,))]
    if a.quick:
        cases = cases[:1]
    ok = True
    # setmaxnreg redistributes the CTA's own registers (USETMAXREG ... CTAPOOL): the consumers'
    # increase must be covered by the launch allocation, else they wait forever
    pool = (PROD_THREADS + 32 * CONS_WARPS) * LAUNCH_REGS
    need = PROD_THREADS * PROD_REGS + 32 * CONS_WARPS * CONS_REGS
    print(f"registers: {PROD_THREADS} x {PROD_REGS} + {32 * CONS_WARPS} x {CONS_REGS} = {need} of the launch's {pool}: "
          f"{'OK' if need <= pool else 'FAIL (setmaxnreg.inc would never be granted)'}")
    ok &= need <= pool
    if a.plant or a.plant_all:
        bugs = [a.plant] if a.plant else ['swizzle', 'parity', 'empty1', 'stages2', 'arow']
        for bug in bugs:
            Bug.name = bug
            S = 2 if bug == 'stages2' else 4
            r = run_case('chn', 128, 256, 1024, None, S, seed=11)
            det = r != 0
            print(f"planted bug {bug}: {'DETECTED' if det else 'NOT DETECTED'} ({r if isinstance(r, str) else f'{r} wrong'})")
            ok &= det
        Bug.name = None
        print("ALL PLANTED BUGS DETECTED" if ok else "FAIL: a planted bug went unnoticed")
        return ok
    for fmt, M, N, K, ktps, seeds in cases:
        for seed in seeds:
            r = run_case(fmt, M, N, K, ktps, 4, seed)
            KT = (K + BK - 1) // BK
            sl = f"ktps {ktps} ({(KT + ktps - 1) // ktps} slices)" if ktps else "unsplit"
            good = r == 0
            print(f"{fmt:4} M={M} N={N} K={K} {sl}, seed {seed}: {'OK' if good else f'FAIL ({r})'}")
            ok &= good
    print("ALL OK" if ok else "FAIL")
    return ok


if __name__ == '__main__':
    sys.exit(0 if main() else 1)
