#!/usr/bin/env bash
# One device-machine call that checks the GPU defaults chosen from measurements (stop 17: the wgmma
# GEMM on its measured shapes, the cp.async attention loader, the tiled prefill at 2 rows, the A8
# producers' wide1 shape at large M) and measures the issue 7 / 8 benchmark tables with them:
# build; test_gpu_gemm (default and wgmma families), test_gpu_wgmma, test_gpu_kernels,
# test_gpu_engines; compute-sanitizer memcheck + racecheck on the small GEMM matrix (default and
# wgmma families) and memcheck on test_gpu_wgmma; `qvet bench` (every GEMM shape), the attention +
# producer bench, decode tokens/s (bench_gpu_engines); a summary table last. Logs and JSON under $OUT.
# From the source root on the GPU machine (.gpu-debs and .gpu-model/qvet-tiny-llama carried):
#   bash tools/gpu_defaults_run.sh [steps]      steps: comma list of build,tests,san,bench (default all)
set -u
steps="${1:-build,tests,san,bench}"
has() { [[ ",$steps," == *",$1,"* ]]; }
OUT="${OUT:-/tmp/qv-out}"; mkdir -p "$OUT"; t0=$SECONDS; sum=()
step() {
  local name=$1 lim=$2; shift 2
  local s=$SECONDS
  timeout -k 10 "$lim" "$@" > "$OUT/$name.log" 2>&1
  local rc=$? dt=$((SECONDS - s))
  sum+=("$(printf '%-24s rc=%-3s %4ds  %s' "$name" "$rc" "$dt" "$(grep -E '^[0-9]+%:|ERROR SUMMARY|RACECHECK SUMMARY|gpu gemm cases|^kernels:' "$OUT/$name.log" | tail -1)")")
}
eval "$(bash tools/sysroot.sh .gpu-debs)"
export CK_FORK=no
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv,noheader > "$OUT/gpu.txt" 2>&1
if has build; then
  cmake -S . -B build-gpu ${QV_SYSROOT_CMAKE_ARGS:-} -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_BUILD_TYPE=RelWithDebInfo > "$OUT/build.log" 2>&1 &&
    cmake --build build-gpu -j16 >> "$OUT/build.log" 2>&1 || { grep -E "error" "$OUT/build.log" | head -20; exit 1; }
  echo "build ok $((SECONDS - t0)) s"
fi
if has tests; then
  QV_GPU_GEMM_FAMILIES=default,wgmma step test_gpu_gemm 200 build-gpu/test_gpu_gemm
  step test_gpu_wgmma 60 build-gpu/test_gpu_wgmma
  step test_gpu_kernels 200 build-gpu/test_gpu_kernels
  QV_GPU_MODEL=$PWD/.gpu-model/qvet-tiny-llama step test_gpu_engines 200 build-gpu/test_gpu_engines
fi
if has san; then
  for t in memcheck racecheck; do
    QV_GPU_GEMM_SMALL=1 QV_GPU_GEMM_FAMILIES=default,wgmma step "san_gemm_$t" 150 compute-sanitizer --tool $t --error-exitcode 9 build-gpu/test_gpu_gemm
  done
  step san_wgmma_memcheck 120 compute-sanitizer --tool memcheck --error-exitcode 9 build-gpu/test_gpu_wgmma
fi
if has bench; then
  step bench_gemm 240 build-gpu/qvet bench --json "$OUT/bench_gemm.json"
  step bench_attn 100 build-gpu/bench/bench_gpu_attn "$OUT/bench_attn.json"
  step bench_engines 200 build-gpu/bench/bench_gpu_engines "$OUT/bench_engines.json"
fi
for f in test_gpu_gemm test_gpu_kernels test_gpu_engines; do [ -f "$OUT/$f.log" ] && grep -E "Failure|FAIL|PATH:|Assertion" "$OUT/$f.log" | head -6; done
[ -f "$OUT/test_gpu_kernels.log" ] && grep -E "A8 producers:|tiled prefill:" "$OUT/test_gpu_kernels.log" | head -4
[ -f "$OUT/test_gpu_engines.log" ] && grep -E "prefill n vs|^figure" "$OUT/test_gpu_engines.log" | head -8
[ -f "$OUT/bench_gemm.log" ] && grep -vE "^(attn|rmsnorm|silu|quant)" "$OUT/bench_gemm.log" | head -45
[ -f "$OUT/bench_attn.log" ] && head -25 "$OUT/bench_attn.log"
[ -f "$OUT/bench_engines.log" ] && tail -12 "$OUT/bench_engines.log"
echo "==== summary ($((SECONDS - t0)) s)"
printf '%s\n' "${sum[@]}"
