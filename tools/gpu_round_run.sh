#!/usr/bin/env bash
# One device-machine call that checks a round of GPU work end to end, each step under its own time
# limit, and prints a summary last: build (sm_90), the GEMM case matrix (default + decodesplit
# families), the fused/attention kernel test, the engine test, the attention + producer bench,
# the GEMM bench at M = 1 / 16 / 1024 (decode kernel vs QV_GEMM_VARIANT=nodecode), the decode
# tokens/s bench; with "san" also compute-sanitizer memcheck + racecheck on the small matrices.
# From the source root on the GPU machine (logs and JSON under $OUT):
#   QV_GPU_MODEL=$PWD/.gpu-model/qvet-tiny-llama bash tools/gpu_round_run.sh [DEBS_DIR] [steps]
# steps: comma list of build,gemm,kernels,engines,battn,bgemm,beng,san (default: all but san)
set -u
debs="${1:-.gpu-debs}"; steps="${2:-build,gemm,kernels,engines,battn,bgemm,beng}"
OUT="${OUT:-/tmp/qv-out}"; mkdir -p "$OUT"
has() { [[ ",$steps," == *",$1,"* ]]; }
t0=$SECONDS; sum=()
pat='^[0-9]+%:|gpu gemm cases|ERROR SUMMARY|RACECHECK SUMMARY'
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
  cmake -S . -B build-gpu ${QV_SYSROOT_CMAKE_ARGS:-} -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    > "$OUT/build.log" 2>&1 && cmake --build build-gpu -j16 >> "$OUT/build.log" 2>&1 || { grep -E "error" "$OUT/build.log" | head -20; tail -20 "$OUT/build.log"; exit 1; }
  echo "build ok ($((SECONDS - t0)) s)"
fi
has gemm && QV_GPU_GEMM_FAMILIES=default,decodesplit step test_gpu_gemm 200 build-gpu/test_gpu_gemm
has kernels && step test_gpu_kernels 200 build-gpu/test_gpu_kernels
has engines && step test_gpu_engines 300 build-gpu/test_gpu_engines
has battn && step bench_attn 150 build-gpu/bench/bench_gpu_attn "$OUT/bench_attn.json"
has bgemm && step bench_gemm 300 build-gpu/qvet bench --filter "M=1" --json "$OUT/bench_gemm.json"
has bgemm && QV_GEMM_VARIANT=nodecode step bench_gemm_nodecode 300 build-gpu/qvet bench --filter "M=1" --json "$OUT/bench_gemm_nodecode.json"
has beng && step bench_engines 200 build-gpu/bench/bench_gpu_engines "$OUT/bench_engines.json"
if has san; then
  for t in memcheck racecheck; do
    QV_GPU_KERNELS_SMALL=1 step "san_kernels_$t" 200 compute-sanitizer --tool $t --error-exitcode 9 build-gpu/test_gpu_kernels
    QV_GPU_GEMM_SMALL=1 QV_GPU_GEMM_FAMILIES=default,decodesplit step "san_gemm_$t" 200 compute-sanitizer --tool $t --error-exitcode 9 build-gpu/test_gpu_gemm
  done
  QV_GPU_ENGINES_QUICK=1 step san_engines_memcheck 200 compute-sanitizer --tool memcheck --error-exitcode 9 build-gpu/test_gpu_engines
fi
for f in test_gpu_gemm test_gpu_kernels test_gpu_engines; do
  [ -f "$OUT/$f.log" ] && grep -E "Failure|FAIL|first mismatch|Assertion" "$OUT/$f.log" | head -8
done
[ -f "$OUT/bench_attn.log" ] && cat "$OUT/bench_attn.log"
[ -f "$OUT/bench_gemm.log" ] && { echo "-- qvet bench (default)"; tail -14 "$OUT/bench_gemm.log"; }
[ -f "$OUT/bench_gemm_nodecode.log" ] && { echo "-- qvet bench (nodecode)"; tail -12 "$OUT/bench_gemm_nodecode.log"; }
[ -f "$OUT/bench_engines.log" ] && tail -12 "$OUT/bench_engines.log"
echo "==== summary ($((SECONDS - t0)) s; $(cat "$OUT/gpu.txt"))"
printf '%s\n' "${sum[@]}"
