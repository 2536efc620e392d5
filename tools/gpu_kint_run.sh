#!/usr/bin/env bash
# One device-machine call for the `qvet kernels` / `qvet bench` integration (branch kint; never run
# on a GPU yet): build (sm_90), `qvet kernels --quick --backend gpu` on the attention + fused-producer
# cases, the full `qvet kernels --quick` (both backends), test_gpu_kernels (its A8 checks now go
# through evals/kernels/kcase_fused_check.c), and `qvet bench --filter "M=1" --json` (GEMM +
# attention + producers in one JSON; jq-free key check). Summary table last; logs/JSON under $OUT.
# From the source root on the GPU machine:  bash tools/gpu_kint_run.sh [DEBS_DIR]
set -u
debs="${1:-.gpu-debs}"
OUT="${OUT:-/tmp/qv-out}"; mkdir -p "$OUT"
t0=$SECONDS; sum=()
step() {
  local name=$1 lim=$2; shift 2
  local s=$SECONDS
  timeout "$lim" "$@" > "$OUT/$name.log" 2>&1
  local rc=$? dt=$((SECONDS - s))
  sum+=("$(printf '%-22s rc=%-3s %4ds  %s' "$name" "$rc" "$dt" "$(grep -E '^kernels:|^[0-9]+%:' "$OUT/$name.log" | tail -1)")")
}
[ -d "$debs" ] && eval "$(bash tools/sysroot.sh "$debs")"
export CK_FORK=no
cmake -S . -B build-gpu ${QV_SYSROOT_CMAKE_ARGS:-} -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  > "$OUT/build.log" 2>&1 && cmake --build build-gpu -j16 >> "$OUT/build.log" 2>&1 || { grep -E "error" "$OUT/build.log" | head -20; exit 1; }
echo "build ok ($((SECONDS - t0)) s)"
step kernels_extra_gpu 200 build-gpu/qvet kernels --quick --backend gpu --filter '^(attn|fused)/' --json "$OUT/kernels_extra_gpu.json"
step kernels_quick_all 300 build-gpu/qvet kernels --quick --json "$OUT/kernels_quick_all.json"
step test_gpu_kernels 200 build-gpu/test_gpu_kernels
step bench 300 build-gpu/qvet bench --filter "M=1" --json "$OUT/bench.json"
for k in '"results"' '"attention"' '"fused"' '"copy_GBps_rw"' '"copy_GBps"'; do
  grep -q "$k" "$OUT/bench.json" 2>/dev/null && echo "bench.json has $k" || echo "bench.json LACKS $k"
done
grep -E "FAIL|ERROR|BEYOND|MISMATCH" "$OUT/kernels_extra_gpu.log" | head -20
grep -E "SKIP" "$OUT/kernels_extra_gpu.log" | head -5
echo "==== summary ($((SECONDS - t0)) s)"
printf '%s\n' "${sum[@]}"
