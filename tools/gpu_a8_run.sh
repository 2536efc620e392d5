#!/usr/bin/env bash
# One device-machine call for the A8 producers (issue 8, gpu/fused_a8_rows.cuh), each step under
# its own time limit, summary last: build (sm_90, build-gpu, reused if present; only the targets
# used here), test_gpu_kernels with every QV_A8_VARIANT (QV_A8_ALL_VARIANTS=1: each producer test
# per variant, each variant bit-identical to the default), the engines' prefill-vs-decode
# consistency test (QV_GPU_ENGINES_QUICK=1: the A8 producers' results must not depend on M), and
# the attention + producer bench with the variant sweep (QV_BENCH_A8_SWEEP=1). Budget: ~4 minutes
# of device time with build-gpu present (a fresh build of the three targets adds ~2-3 minutes).
# From the source root on the GPU machine (logs and JSON under $OUT):
#   bash tools/gpu_a8_run.sh [DEBS_DIR] [steps]
# steps: comma list of build,kernels,engines,bench (default: all)
set -u
debs="${1:-.gpu-debs}"; steps="${2:-build,kernels,engines,bench}"
OUT="${OUT:-/tmp/qv-out}"; mkdir -p "$OUT"
has() { [[ ",$steps," == *",$1,"* ]]; }
t0=$SECONDS; sum=()
pat='^[0-9]+%:|variants bit-identical|A8 producers:'
step() {
  local name=$1 lim=$2; shift 2
  local s=$SECONDS
  timeout "$lim" "$@" > "$OUT/$name.log" 2>&1
  local rc=$? dt=$((SECONDS - s)) last
  last=$(grep -E "$pat" "$OUT/$name.log" | tail -1)
  sum+=("$(printf '%-22s rc=%-3s %4ds  %s' "$name" "$rc" "$dt" "$last")")
}
[ -d "$debs" ] && eval "$(bash tools/sysroot.sh "$debs")"
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,temperature.gpu --format=csv,noheader > "$OUT/gpu.txt" 2>&1
export CK_FORK=no
if has build; then
  { [ -f build-gpu/CMakeCache.txt ] || cmake -S . -B build-gpu ${QV_SYSROOT_CMAKE_ARGS:-} -DCMAKE_CUDA_ARCHITECTURES=90 \
      -DCMAKE_BUILD_TYPE=RelWithDebInfo; } > "$OUT/build.log" 2>&1 &&
    timeout 420 cmake --build build-gpu -j16 --target test_gpu_kernels test_gpu_engines bench_gpu_attn >> "$OUT/build.log" 2>&1 ||
    { grep -E "error" "$OUT/build.log" | head -20; tail -20 "$OUT/build.log"; exit 1; }
  echo "build ok ($((SECONDS - t0)) s)"
fi
has kernels && QV_A8_ALL_VARIANTS=1 step test_gpu_kernels 200 build-gpu/test_gpu_kernels
has engines && QV_GPU_ENGINES_QUICK=1 step test_gpu_engines_quick 90 build-gpu/test_gpu_engines
# (bench_gpu_attn has no filter: the attention rows run too, a few tens of seconds)
has bench && QV_BENCH_A8_SWEEP=1 step bench_attn 150 build-gpu/bench/bench_gpu_attn "$OUT/bench_attn.json"
for f in test_gpu_kernels test_gpu_engines_quick; do
  [ -f "$OUT/$f.log" ] && grep -E "Failure|FAIL|differ;|beyond the|the default's|Assertion|is not a variant" "$OUT/$f.log" | head -8
done
[ -f "$OUT/test_gpu_kernels.log" ] && grep -E "variants bit-identical|A8 producers:" "$OUT/test_gpu_kernels.log"
[ -f "$OUT/bench_attn.log" ] && cat "$OUT/bench_attn.log"
echo "==== summary ($((SECONDS - t0)) s; $(cat "$OUT/gpu.txt"))"
printf '%s\n' "${sum[@]}"
