// Host-side interface between gemm_launch.cu (built for every architecture of the build) and the
// sm_90a wgmma GEMM path (gpu/sm90a/gemm_wgmma.cu, built for sm_90a only, and only when the CUDA
// compiler knows sm_90a: the build then defines QV_HAVE_WGMMA for gemm_launch.cu).
// Why a separate translation unit: wgmma exists only in the arch-specific sm_90a image, which
// cannot run on sm_80/89 nor be JIT-compiled from a portable PTX; keeping it out of the other
// files leaves their sm_80/89/90 images unchanged.
#ifndef QV_GEMM_WGMMA_H
#define QV_GEMM_WGMMA_H

#include <cstddef>

#include <cuda_runtime.h>

#include "gemm_mma_core.cuh"

extern "C" {
#include "qvet/status.h"
}

namespace qvg {

// The W4 formats the wgmma path runs (W8A8 stays on mma.sync).
enum WgFormat { kWgChn = 0, kWgG128 = 1 };

// Block tile (channels x tokens) and K per stage: the host's split-K choice needs them.
constexpr int kWgBC = 256, kWgBT = 128, kWgBK = 128;

// The smallest M the path takes (below, the tiled mma.sync kernels): a block computes 128 tokens,
// so M < 64 would leave more than half of every wgmma idle.
constexpr int kWgMinM = 64;

// Launches the wgmma GEMM when it applies (M >= kWgMinM, a compute capability 9.0 device whose
// sm_90a image loads, and a shared-memory layout that passed the self-test on this device);
// *done = false (nothing launched, no error) otherwise, so the caller falls back to mma.sync.
// Split-K: p.ktps = stages (of kWgBK) per K slice (0 or >= all: unsplit); when it splits, p.ws
// ([slices][M][N] INT32) and p.cnt (one zeroed counter per block tile) must be set, as for the
// tiled kernels (gemm_launch.cu's per-stream workspace).
qv_status wgmma_gemm(const Params &p, WgFormat fmt, bool out_acc, cudaStream_t st, bool *done);

// Whether wgmma_gemm would launch on the current device (deciding it, with the self-test, on
// first use): the caller then sets up split-K only for launches that happen.
qv_status wgmma_ready(bool *ok);

// The self-test (tests/test_gpu_wgmma.c through qv_gpu_wgmma_probe): runs the kernel on one small
// known problem under every candidate layout interpretation, writes a human-readable table to
// report, and returns the index of the first candidate whose INT32 accumulators are bit-exact
// in *chosen (-1: none; -2: not applicable on this device, reason in report).
qv_status wgmma_probe_report(char *report, size_t n, int *chosen);

// Launches of the wgmma kernel so far (this process): tests check which path ran.
unsigned long wgmma_launches();

// *ok = true when the layout the wgmma path uses on the current device (the self-test's choice,
// or QV_WGMMA_LAYOUT) is the 128-byte swizzle with SBO 1024 and a +32-byte k32 step (candidates 0
// and 1 of gemm_wgmma.cu): the one the warp-specialized kernel hard-codes for both of its
// shared-memory operands. false (no error) when the path does not apply or no candidate passed.
qv_status wgmma_sw128_layout(bool *ok);

// The warp-specialized variant (gpu/sm90a/gemm_wgmma_ws.cu, QV_GEMM_VARIANT=wgmma_ws; never the
// default): same contract as wgmma_gemm (same results bit for bit, same split-K protocol and
// p.ktps meaning), launched only where wgmma_sw128_layout says yes; *done = false otherwise.
qv_status wgmma_ws_gemm(const Params &p, WgFormat fmt, bool out_acc, cudaStream_t st, bool *done);
// Whether wgmma_ws_gemm would launch on the current device (runs the wgmma self-test on first use).
qv_status wgmma_ws_ready(bool *ok);
// Launches of the warp-specialized kernel so far (this process).
unsigned long wgmma_ws_launches();

} // namespace qvg

#endif
