#!/usr/bin/env bash
# One device-machine call for the KV4 attention kernel and the A8 producers: build (sm_90),
# test_gpu_kernels (default loaders) and again with the attention's sm_90 bulk-copy loader
# (QV_ATTN_LOADS=bulk), test_gpu_engines, `qvet kernels` attention cases,
# compute-sanitizer memcheck/racecheck/synccheck on the small kernel matrix, the attention +
# producer bench (QV_BENCH_A8_SWEEP=1), the attention rows again with the bulk loader, and ncu
# on batch 64 x 4096. Summary table last.
# From the source root on the GPU machine (logs under $OUT): bash tools/gpu_attn_run.sh [steps]
# (needs .gpu-debs and .gpu-model/qvet-tiny-llama carried). steps: comma list of
# build,tests,san,bench,a8all (default: all but a8all). a8all = test_gpu_kernels with every A8
# variant (QV_A8_ALL_VARIANTS=1): it took > 200 s in stop 16, so it is a call of its own.
set -u
steps="${1:-build,tests,san,bench}"
has() { [[ ",$steps," == *",$1,"* ]]; }
OUT="${OUT:-/tmp/qv-out}"; mkdir -p "$OUT"; t0=$SECONDS; sum=()
step() {
  local name=$1 lim=$2; shift 2
  local s=$SECONDS
  timeout "$lim" "$@" > "$OUT/$name.log" 2>&1
  local rc=$? dt=$((SECONDS - s))
  sum+=("$(printf '%-26s rc=%-3s %4ds  %s' "$name" "$rc" "$dt" "$(grep -E '^[0-9]+%:|ERROR SUMMARY|RACECHECK SUMMARY|^kernels:' "$OUT/$name.log" | tail -1)")")
}
eval "$(bash tools/sysroot.sh .gpu-debs)"
export CK_FORK=no
if has build; then
  cmake -S . -B build-gpu ${QV_SYSROOT_CMAKE_ARGS:-} -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_BUILD_TYPE=RelWithDebInfo > "$OUT/build.log" 2>&1 && cmake --build build-gpu -j16 >> "$OUT/build.log" 2>&1 || { grep -E "error" "$OUT/build.log" | head -20; exit 1; }
  echo "build ok $((SECONDS-t0)) s"
fi
if has tests; then
  step test_gpu_kernels 200 build-gpu/test_gpu_kernels
  QV_GPU_KERNELS_SMALL=1 QV_ATTN_LOADS=bulk step test_gpu_kernels_bulk 120 build-gpu/test_gpu_kernels
  QV_GPU_MODEL=$PWD/.gpu-model/qvet-tiny-llama step test_gpu_engines 200 build-gpu/test_gpu_engines
  step kernels_attn 60 build-gpu/qvet kernels --quick --backend gpu --filter '^attn/'
fi
if has san; then
  for t in memcheck racecheck synccheck; do QV_GPU_KERNELS_SMALL=1 step "san_$t" 150 compute-sanitizer --tool $t --error-exitcode 9 build-gpu/test_gpu_kernels; done
fi
if has bench; then
  QV_BENCH_A8_SWEEP=1 step bench_attn 150 build-gpu/bench/bench_gpu_attn "$OUT/bench_attn.json"
  QV_ATTN_LOADS=bulk step bench_attn_bulk 60 build-gpu/qvet bench --filter attn_kv4 --json "$OUT/bench_attn_bulk.json"
  S="--section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats --section SchedulerStats --section InstructionStats"
  QV_BENCH_ATTN_ONLY=3 timeout 100 ncu $S -k regex:attn_kv4_mma --launch-skip 3 --launch-count 1 build-gpu/bench/bench_gpu_attn /tmp/y.json > $OUT/ncu_attn.txt 2>&1
fi
has a8all && QV_A8_ALL_VARIANTS=1 step test_gpu_kernels_a8all 540 build-gpu/test_gpu_kernels
for f in test_gpu_kernels test_gpu_kernels_bulk test_gpu_engines test_gpu_kernels_a8all; do [ -f "$OUT/$f.log" ] && grep -E "Failure|FAIL|Assertion|differ;" "$OUT/$f.log" | head -6; done
[ -f "$OUT/test_gpu_kernels.log" ] && grep -E "tensor-core kernel|tiled prefill:|variants bit-identical|A8 producers:" "$OUT/test_gpu_kernels.log" | head -30
[ -f "$OUT/test_gpu_kernels_bulk.log" ] && grep -E "tensor-core kernel" "$OUT/test_gpu_kernels_bulk.log" | head -4
[ -f "$OUT/test_gpu_engines.log" ] && grep -E "rand-hd128|prefill n vs" "$OUT/test_gpu_engines.log" | head -8
[ -f "$OUT/bench_attn.log" ] && { cat "$OUT/bench_attn.log"; echo "-- bulk loader"; grep -A6 "batch,ctx" "$OUT/bench_attn_bulk.log"; }
[ -f "$OUT/ncu_attn.txt" ] && grep -E "Duration|DRAM Throughput|No Eligible|Executed Instructions  |Warp Cycles Per Issued|Registers Per|Achieved Occupancy" $OUT/ncu_attn.txt | head -8
echo "==== summary ($((SECONDS - t0)) s)"
printf '%s\n' "${sum[@]}"
