#!/usr/bin/env python3
# Host emulation of gpu/gemm_decode.cuh's index math, for changing it without a GPU: the x
# staging map (fragment order, W8A8's k permutation, the dec_slot swizzle), the A/B fragments
# of mma.m16n8k32.s8 as the PTX ISA defines them, the K-warp reduction layout and the host's
# K slicing, against a plain integer GEMM. It mirrors the kernel's formulas line by line, so a
# change to one must be made to the other; it proves the mapping, not the CUDA code (that is
# tests/test_gpu_gemm.c on a device). Needs numpy. Prints one line per case and ALL OK / FAIL.
import numpy as np, sys
rng = np.random.default_rng(1)

def bytes4(w):  # uint32 -> 4 signed bytes (little endian)
    return np.array([(w >> (8*i)) & 255 for i in range(4)], dtype=np.int64).astype(np.uint8).astype(np.int8).astype(np.int64)

def word(bs):  # 4 uint8 -> uint32
    return int(bs[0]) | (int(bs[1]) << 8) | (int(bs[2]) << 16) | (int(bs[3]) << 24)

def mma(acc, a, b):
    # acc[lane][4], a[lane][4], b[lane][2]  (m16n8k32 s8)
    A = np.zeros((16, 32), np.int64); B = np.zeros((32, 8), np.int64)
    for l in range(32):
        g, t = l >> 2, l & 3
        A[g, 4*t:4*t+4] = bytes4(a[l][0]); A[g+8, 4*t:4*t+4] = bytes4(a[l][1])
        A[g, 16+4*t:16+4*t+4] = bytes4(a[l][2]); A[g+8, 16+4*t:16+4*t+4] = bytes4(a[l][3])
        B[4*t:4*t+4, g] = bytes4(b[l][0]); B[16+4*t:16+4*t+4, g] = bytes4(b[l][1])
    D = A @ B
    for l in range(32):
        g, t = l >> 2, l & 3
        acc[l][0] += D[g, 2*t]; acc[l][1] += D[g, 2*t+1]; acc[l][2] += D[g+8, 2*t]; acc[l][3] += D[g+8, 2*t+1]

def pack_w4(u, N, K):
    pk = np.zeros(N*K//2, np.uint8)
    for n in range(N):
        for k in range(K):
            tile = (n//32)*(K//32) + k//32
            a, b, c = (n % 32)//16, (n % 16)//8, n % 8
            d, e, f = (k % 32)//16, (k % 16)//4, k % 4
            off = tile*512 + 64*c + 16*e + 8*d + 4*b + f
            if a: pk[off] |= u[n, k] << 4
            else: pk[off] |= u[n, k]
    return pk

def run(kind, M, N, K, MT, ktps_override=None, slots=396):
    x = rng.integers(-127, 128, (M, K)).astype(np.int8)
    if kind == 'w8':
        w = rng.integers(-127, 128, (N, K)).astype(np.int8); wbytes = w.astype(np.uint8).reshape(-1)
        KG, STEPS, perm = 64, 2, True
        ref = x.astype(np.int64) @ w.astype(np.int64).T
    else:
        u = rng.integers(0, 16, (N, K)).astype(np.uint8); wbytes = pack_w4(u, N, K)
        KG, STEPS, perm = 128, 4, False
        ref = x.astype(np.int64) @ u.astype(np.int64).T
    xb = x.astype(np.uint8).reshape(-1)
    REGS = MT // 4
    WN, WK, BN = 4, 2, 128
    cols = (N + BN - 1)//BN
    kgall = (K + KG - 1)//KG
    if ktps_override: s = kgall
    else:
        s = max(1, slots // cols); s = min(s, (kgall + WK - 1)//WK)
    ktps = (kgall + s - 1)//s; s = (kgall + ktps - 1)//ktps
    ws = {}
    out = np.full((M, N), -999999, np.int64)
    for bx in range(cols):
        for z in range(s):
            kg0 = z*ktps; nkg = min(kgall, kg0 + ktps) - kg0
            # staging
            nk = nkg*KG; nch = nk//16
            xs = np.zeros(nkg*STEPS*32*REGS, np.uint64)
            slot = lambda L: L ^ ((L >> 3) & 3)
            for it in range(MT*nch):
                m, c = it % MT, it // MT; k = kg0*KG + 16*c
                v = [0, 0, 0, 0]
                if m < M and k < K:
                    v = [word(xb[m*K + k + 4*j: m*K + k + 4*j + 4]) for j in range(4)]
                for j in range(4):
                    if perm: step, t, hi = 2*(c >> 2) + (j >> 1), c & 3, j & 1
                    else: step, t, hi = c >> 1, j, c & 1
                    idx = 4*(m >> 4) + 2*hi + ((m >> 3) & 1) if MT >= 16 else hi
                    xs[(step*32 + slot((m & 7)*4 + t))*REGS + idx] = v[j]
            red = np.zeros((WK, MT, BN + 8), np.int64)
            for warp in range(8):
                wn, wk = warp % WN, warp // WN
                nb = bx*WN + wn
                per = (nkg + WK - 1)//WK; wb0 = min(nkg, wk*per); wb1 = min(nkg, wb0 + per)
                TI = max(1, MT // 16)
                accj = [[[[0]*4 for _ in range(32)] for _ in range(4)] for _ in range(TI)]  # [m16 tile][n8 tile][lane][c0..c3]
                for b in range(wb0, wb1):
                    kg = kg0 + b
                    # load
                    W = [[None]*4 for _ in range(32)]
                    for l in range(32):
                        if perm:
                            k = kg*64 + 16*(l & 3)
                            for j in range(4):
                                n = nb*32 + 8*j + (l >> 2)
                                if n < N and k < K:
                                    o = n*K + k; W[l][j] = [word(wbytes[o+4*q:o+4*q+4]) for q in range(4)]
                                else: W[l][j] = [0]*4
                        else:
                            kt32 = K//32; nv = nb < N//32
                            for i in range(4):
                                if nv and kg*4 + i < kt32:
                                    o = (nb*kt32 + kg*4 + i)*512 + l*16; W[l][i] = [word(wbytes[o+4*q:o+4*q+4]) for q in range(4)]
                                else: W[l][i] = [0]*4
                    base = b*STEPS*32*REGS
                    for st in range(STEPS):
                      for ti in range(TI):
                        a = []
                        for l in range(32):
                            o = base + (st*32 + slot(l))*REGS
                            if MT >= 16: a.append([int(xs[o+4*ti+q]) for q in range(4)])
                            else: a.append([int(xs[o]), 0, int(xs[o+1]), 0])
                        for j in range(4):
                            bb = []
                            for l in range(32):
                                if perm:
                                    w = W[l][j]; bb.append([w[2] if st else w[0], w[3] if st else w[1]])
                                else:
                                    w = W[l][st]; msk = 0x0F0F0F0F
                                    if j == 0: bb.append([w[0] & msk, w[2] & msk])
                                    if j == 1: bb.append([w[1] & msk, w[3] & msk])
                                    if j == 2: bb.append([(w[0] >> 4) & msk, (w[2] >> 4) & msk])
                                    if j == 3: bb.append([(w[1] >> 4) & msk, (w[3] >> 4) & msk])
                            mma(accj[ti][j], a, bb)
                for l in range(32):
                    g, t = l >> 2, l & 3
                    for ti in range(TI):
                      for j in range(4):
                        for h in range(min(MT, 16)//8):
                            col = wn*32 + 8*j + 2*t; r = 16*ti + g + 8*h
                            red[wk, r, col] = accj[ti][j][l][2*h]; red[wk, r, col+1] = accj[ti][j][l][2*h+1]
            part = red.sum(axis=0)[:, :BN]
            ws[(bx, z)] = part
        tot = sum(ws[(bx, z)] for z in range(s))
        for m in range(min(M, MT)):
            for c in range(BN):
                n = bx*BN + c
                if m < M and n < N: out[m, n] = tot[m, c]
    ok = np.array_equal(out, ref)
    print(kind, M, N, K, 'MT', MT, 'split', s, 'ktps', ktps, 'OK' if ok else 'MISMATCH')
    return ok

allok = True
for args in [('w8', 1, 40, 96, 8), ('w8', 13, 72, 224, 16), ('w8', 5, 64, 96, 8), ('w8', 16, 136, 288, 16),
             ('w4', 1, 64, 128, 8), ('w4', 3, 160, 256, 8), ('w4', 16, 96, 384, 16), ('w4', 9, 64, 160, 16), ('w4', 2, 32, 96, 8),
             ('w8', 17, 40, 96, 32), ('w8', 64, 136, 288, 64), ('w4', 33, 96, 384, 64), ('w4', 30, 64, 160, 32)]:
    allok &= run(*args)
    allok &= run(*args, ktps_override=True)
print('ALL OK' if allok else 'FAIL')
sys.exit(0 if allok else 1)
