#!/usr/bin/env bash
# One device-machine call for the KV4 attention kernels: build (sm_90), test_gpu_kernels, test_gpu_engines,
# `qvet kernels` attention cases, compute-sanitizer memcheck/racecheck/synccheck on the small kernel
# matrix, the attention bench at QV_ATTN_SPAN = 1, 2, 4 (same call) and ncu on batch 64 x 4096.
# From the source root on the GPU machine (logs under $OUT): bash tools/gpu_attn_run.sh (needs .gpu-debs, .gpu-model)
set -u
OUT="${OUT:-/tmp/qv-out}"; mkdir -p "$OUT"; t0=$SECONDS
eval "$(bash tools/sysroot.sh .gpu-debs)"
export CK_FORK=no
cmake -S . -B build-gpu ${QV_SYSROOT_CMAKE_ARGS:-} -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_BUILD_TYPE=RelWithDebInfo > "$OUT/build.log" 2>&1 && cmake --build build-gpu -j16 >> "$OUT/build.log" 2>&1 || { grep -E "error" "$OUT/build.log" | head -20; exit 1; }
echo "build ok $((SECONDS-t0)) s"
timeout 120 build-gpu/test_gpu_kernels > "$OUT/tk.log" 2>&1; echo "test_gpu_kernels rc=$?"; grep -E "^[0-9]+%|Failure|attention.*(worst|nmse|NMSE)" "$OUT/tk.log" | head -12
QV_GPU_MODEL=$PWD/.gpu-model/qvet-tiny-llama timeout 200 build-gpu/test_gpu_engines > "$OUT/te.log" 2>&1; echo "test_gpu_engines rc=$?"; grep -E "^[0-9]+%|Failure|rand-hd128|prefill n vs" "$OUT/te.log" | head -14
timeout 60 build-gpu/qvet kernels --quick --backend gpu --filter '^attn/' > "$OUT/kattn.log" 2>&1; echo "kernels attn rc=$?"; tail -1 "$OUT/kattn.log"
for t in memcheck racecheck synccheck; do QV_GPU_KERNELS_SMALL=1 timeout 200 compute-sanitizer --tool $t --error-exitcode 9 build-gpu/test_gpu_kernels > "$OUT/san_$t.log" 2>&1; echo "san $t rc=$?"; grep -E "ERROR SUMMARY|RACECHECK SUMMARY|SYNCCHECK|Hazard" "$OUT/san_$t.log" | head -3; done
for sp in 1 2 4; do QV_ATTN_SPAN=$sp timeout 60 build-gpu/qvet bench --filter attn_kv4 --json "$OUT/battn_$sp.json" > "$OUT/battn_$sp.log" 2>&1; echo "== span $sp"; grep -A6 "batch,ctx" "$OUT/battn_$sp.log"; done
S="--section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats --section SchedulerStats --section InstructionStats"
QV_BENCH_ATTN_ONLY=3 timeout 100 ncu $S -k regex:attn_kv4_mma --launch-skip 3 --launch-count 1 build-gpu/bench/bench_gpu_attn /tmp/y.json > $OUT/ncu_attn.txt 2>&1
grep -E "Duration|DRAM Throughput|Registers Per|Achieved Occupancy|Theoretical Occupancy|Issue Slots Busy|No Eligible|Executed Instructions  |Warp Cycles Per Issued|Block Limit (Reg|Shared)|Dynamic Shared" $OUT/ncu_attn.txt | head -14
echo "total $((SECONDS-t0)) s"
