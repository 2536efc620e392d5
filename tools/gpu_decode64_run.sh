#!/usr/bin/env bash
# One device call for the decode kernel's MT 32 / 64 tiles (QV_GEMM_VARIANT=decode64, M 17..64;
# gpu/gemm_decode.cuh): build, test_gpu_gemm under the decode64 family (every M <= 64 case on the
# decode kernel, bit-exact), compute-sanitizer memcheck + racecheck on the small matrix under it,
# `qvet bench` at M = 16 / 64 with the default rule and with decode64 (same call), and decode
# tokens/s (bench_gpu_engines) with decode64. Summary table last. Logs under $OUT.
# From the source root on the GPU machine (.gpu-debs carried): bash tools/gpu_decode64_run.sh
set -u
OUT="${OUT:-/tmp/qv-out}"; mkdir -p "$OUT"; t0=$SECONDS
bash tools/gpu_defaults_run.sh build > "$OUT/build_step.log" 2>&1 || { tail -20 "$OUT/build_step.log"; grep -E "error" "$OUT/build.log" | head; exit 1; }
echo "build ok $((SECONDS - t0)) s"
eval "$(bash tools/sysroot.sh .gpu-debs)"
export CK_FORK=no
QV_GPU_GEMM_FAMILIES=decode64 timeout -k 10 200 build-gpu/test_gpu_gemm > "$OUT/gemm_decode64.log" 2>&1; echo "test_gpu_gemm decode64 rc=$? $(grep 'gpu gemm cases' "$OUT/gemm_decode64.log")"
grep -E "FAIL|PATH:|first mismatch" "$OUT/gemm_decode64.log" | head -12
for t in memcheck racecheck; do
  QV_GPU_GEMM_SMALL=1 QV_GPU_GEMM_FAMILIES=decode64 timeout -k 10 150 compute-sanitizer --tool $t --error-exitcode 9 build-gpu/test_gpu_gemm > "$OUT/san_$t.log" 2>&1
  echo "$t rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/san_$t.log" | tail -1)"
done
f='^(qkv|o|gate_up|down) M=(16|64)$'
timeout 120 build-gpu/qvet bench --filter "$f" --json "$OUT/bench_default.json" > "$OUT/bench_default.txt" 2>&1
QV_GEMM_VARIANT=decode64 timeout 120 build-gpu/qvet bench --filter "$f" --json "$OUT/bench_decode64.json" > "$OUT/bench_decode64.txt" 2>&1
echo "-- default rule"; grep -E "^(layer|qkv|o |gate_up|down)" "$OUT/bench_default.txt"
echo "-- decode64"; grep -E "^(layer|qkv|o |gate_up|down)" "$OUT/bench_decode64.txt"
QV_GEMM_VARIANT=decode64 timeout 150 build-gpu/bench/bench_gpu_engines "$OUT/bench_engines_decode64.json" > "$OUT/bench_engines_decode64.txt" 2>&1
echo "-- decode tok/s with decode64"; tail -10 "$OUT/bench_engines_decode64.txt"
echo "[done $((SECONDS - t0)) s]"
