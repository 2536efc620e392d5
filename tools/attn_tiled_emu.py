#!/usr/bin/env python3
# Host emulation of gpu/attn_kv4_tiled.cu's index math against gpu/attn_kv4_mma.cu's (the one-row
# kernel), for changing either without a GPU. It mirrors both kernels' control flow (records,
# sub-chunks, warps, 16-position steps, lanes, n8 columns, masks, skips, the ring's items) and
# records, per (row, head), the sequence of operations that determine each value:
#   pass 1: for each stored score (J): the step (sub, warp, st), the MMA row half it comes from and
#           the (row, head) whose sum(q) the storing lane uses (its MMA column's B is that (row,
#           head)'s q: the column's place in the n8 tile differs between the kernels, which
#           mma.sync's column independence makes irrelevant);
#   softmax: (row, head, n);
#   pass 2: per (row, head, part) the ordered MMAs (sub, warp, st, channel tile, hi/lo) with, per
#           B element, the position J it carries or "zero" where masked; per (row, head) the order
#           of the p*mn additions;
#   record write: (row, head, record).
# The two kernels' traces must be equal row for row (what the bit-identity argument in the tiled
# kernel's header needs); it also checks that every row of a tile is processed once per record
# and that the BULK ring's mbarrier parities match across row groups. It proves the mapping, not
# the CUDA code (tests/test_gpu_kernels.c compares the two kernels on a device). Pure Python.
# Prints one line per case and ALL OK / FAIL.
import random, sys
from collections import defaultdict

HD, NW, kSub, kPosWarp = 128, 8, 256, 32
kSteps = kPosWarp // 16
TQ = 4  # rows per tile (the kernel's template parameter: 4 or 2; case() sets it)

def npart(G):
    return 2 if G == 8 else min(8 // G, 3)

def one_row(G, rows, rec, n_chunks, tr):
    """attn_kv4_mma_kernel: grid (record c, row r); tr: trace dict"""
    for r, (slot, ctx) in enumerate(rows):
        for c in range(n_chunks):
            c0 = c * rec
            if c0 >= ctx: continue
            n = min(rec, ctx - c0); nsub = (n + kSub - 1) // kSub
            # pass 1: column = head gid < G
            for sub in range(nsub):
                J0 = sub * kSub
                for warp in range(NW):
                    for st in range(kSteps):
                        base = warp * kPosWarp + 16 * st
                        if J0 + base >= n: break
                        for lane in range(32):
                            gid, tq = lane // 4, lane % 4
                            for h in range(2):
                                j = base + gid + 8 * h; J = J0 + j
                                if J >= n: continue
                                for e in range(2):
                                    col = 2 * tq + e
                                    if col < G:
                                        # B column col = head col of row r; sum(q) from lane 8tq (+4): gid 2tq (+1)
                                        qs_lane = (8 * tq + 4 * e) & 31
                                        tr[(slot, r, col, c)].append(('p1', J, sub, warp, st, ('q', r, qs_lane // 4), h))
            for g in range(G):
                tr[(slot, r, g, c)].append(('sm', n))
            pass2(G, n, nsub, [(r, n)], tr, slot, c)
            for g in range(G):
                tr[(slot, r, g, c)].append(('wr', c))

def pass2(G, nmax, nsub, rws, tr, slot, c):
    """pass 2 of either kernel for the rows rws = [(r, n_t)] sharing the loads (one-row: one)"""
    NP = npart(G)
    for sub in range(nsub):
        J0 = sub * kSub
        for warp in range(NW):
            for st in range(kSteps):
                base = warp * kPosWarp + 16 * st
                if J0 + base >= nmax: break
                for (r, n) in rws:
                    if J0 + base >= n: continue  # the skip (the one-row kernel's break)
                    for lane in range(32):
                        gid, tq = lane // 4, lane % 4
                        hc, pc = (gid, 0) if G == 8 else (gid % G, gid // G)
                        live = hc < G and pc < NP
                        bvals = []
                        for h in range(2):
                            j = base + 8 * h + 2 * tq; J = J0 + j
                            for e in range(2):
                                m = live and J + e < n
                                bvals.append(J + e if m else 'zero')
                                if m and pc == 0:
                                    tr[(slot, r, hc, c)].append(('pmn', warp, lane, J + e))
                        if not live: continue
                        # the 8 channel tiles (and G = 8's hi, lo) follow in the same code in both kernels
                        tr[(slot, r, hc, c)].append(('p2', pc, sub, warp, st, lane, tuple(bvals)))

def tiled(G, rows, rec, n_chunks, tr, ring_check):
    """attn_kv4_tiled_kernel: grid (record c, tile z)"""
    NCOL = TQ * G; NT = (NCOL + 7) // 8
    R = len(rows)
    for c in range(n_chunks):
        c0 = c * rec
        for z in range((R + TQ - 1) // TQ):
            r0 = z * TQ
            rslot = [rows[r0 + t][0] if r0 + t < R else -1 for t in range(TQ)]
            rctx = [rows[r0 + t][1] if r0 + t < R else 0 for t in range(TQ)]
            todo = sum(1 << t for t in range(TQ) if r0 + t < R and c0 < rctx[t])
            ib = 0; phase = [0, 0]; done = 0
            while todo:
                lead = (todo & -todo).bit_length() - 1
                slot = rslot[lead]
                nr = [0] * TQ
                for t in range(TQ):
                    nr[t] = min(rec, rctx[t] - c0) if (todo >> t) & 1 and rslot[t] == slot else 0
                    if nr[t] > 0:
                        todo &= ~(1 << t); assert not (done >> t) & 1; done |= 1 << t
                nmax = max(nr); nsub = (nmax + kSub - 1) // kSub
                assert nmax > 0
                # ring: item gi lands in buffer gi & 1, completing that buffer's next phase; the
                # waiter waits for parity (gi >> 1) & 1 of it
                for it in range(2 * nsub):
                    gi = ib + it
                    assert phase[gi & 1] == gi >> 1, "ring: buffer use count out of step"
                    ring_check.append(((gi >> 1) & 1) == (phase[gi & 1] & 1))
                    phase[gi & 1] += 1
                # pass 1
                for sub in range(nsub):
                    J0 = sub * kSub
                    for warp in range(NW):
                        for st in range(kSteps):
                            base = warp * kPosWarp + 16 * st
                            if J0 + base >= nmax: break
                            for T in range(NT):
                                for lane in range(32):
                                    gid, tq = lane // 4, lane % 4
                                    for h in range(2):
                                        j = base + gid + 8 * h; J = J0 + j
                                        if J >= nmax: continue
                                        for e in range(2):
                                            col = 8 * T + 2 * tq + e
                                            if col < NCOL and J < nr[col // G]:
                                                t, g = col // G, col % G
                                                # B lane of column col in tile T is gid = col % 8:
                                                bcol = 8 * T + (col % 8)
                                                qs_lane = (8 * tq + 4 * e) & 31
                                                qcol = 8 * T + qs_lane // 4
                                                assert bcol == col
                                                tr[(slot, r0 + t, g, c)].append(
                                                    ('p1', J, sub, warp, st, ('q', r0 + qcol // G, qcol % G), h))
                for k in range(NCOL):
                    t, g = k // G, k % G
                    if nr[t] > 0: tr[(slot, r0 + t, g, c)].append(('sm', nr[t]))
                pass2(G, nmax, nsub, [(r0 + t, nr[t]) for t in range(TQ) if nr[t] > 0], tr, slot, c)
                for t in range(TQ):
                    if nr[t] > 0:
                        for g in range(G): tr[(slot, r0 + t, g, c)].append(('wr', c))
                ib += 2 * nsub
            want = sum(1 << t for t in range(TQ) if r0 + t < R and c0 < rctx[t])
            assert done == want, "a row of the tile was not processed exactly once"

def norm_one_row(tr):
    # the one-row kernel's pass-1 'q' source is (row, head = gid of the qs lane); the tiled one's is
    # (row, head) of the column: make both (row, head)
    out = {}
    for k, v in tr.items():
        out[k] = [(x[:5] + (('q', x[5][1], x[5][2]),) + x[6:]) if x[0] == 'p1' else x for x in v]
    return out

def case(G, seqs, span, name, tq=4):
    global TQ
    TQ = tq
    name = f"{name} TQ={tq}"
    rec = kSub * span
    rows = []
    for slot, (start, ctx) in enumerate(seqs):
        rows += [(slot, p + 1) for p in range(start, ctx)]
    max_ctx = max(c for _, c in seqs)
    n_chunks = (max_ctx + rec - 1) // rec
    a, b, ring = defaultdict(list), defaultdict(list), []
    one_row(G, rows, rec, n_chunks, a)
    tiled(G, rows, rec, n_chunks, b, ring)
    a = norm_one_row(a)
    ok = set(a) == set(b) and all(a[k] == b[k] for k in a) and all(ring)
    if not ok:
        bad = [k for k in set(a) | set(b) if a.get(k) != b.get(k)][:1]
        print(f"FAIL {name}: first differing (slot, row, head, record) {bad}")
    else:
        print(f"ok   {name}: {len(rows)} rows, {len(a)} (row, head, record) traces equal, {len(ring)} ring items")
    return ok

def main():
    random.seed(7)
    ok = True
    seqs = [(0, 1), (0, 15), (24, 40), (1010, 1027), (1000, 1100)]  # T = 1, 15, 16, 17, 100
    for tq in (4, 2):
        for G in (1, 2, 4, 8):
            ok &= case(G, seqs, 4, f"G={G} span 4 T=1,15,16,17,100", tq)
        ok &= case(4, seqs, 1, "G=4 span 1 (records of 256)", tq)
        dec = [(c - 1, c) for c in (1, 15, 16, 17, 83, 256, 257, 300)]  # decode rows: one slot each
        ok &= case(2, dec, 4, "G=2 decode rows (groups of one row)", tq)
        ok &= case(8, [(0, 9), (300, 303), (5, 6), (1020, 1031)], 4, "G=8 ragged tiles", tq)
    print("ALL OK" if ok else "FAIL")
    return 0 if ok else 1

if __name__ == "__main__":
    sys.exit(main())
