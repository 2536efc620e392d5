#!/usr/bin/env bash
# One device-machine call for the GPU GEMM work (issue 7): build, tests, compute-sanitizer
# (memcheck + racecheck on small shapes), benchmark. Logs and JSON under $OUT; short table last.
# Run from the source root on the GPU machine: bash tools/gpu_gemm_run.sh [DEBS_DIR] [what]
# what: all (default) | test | bench
set -u
debs="${1:-../.gpu-debs}"; what="${2:-all}"
OUT="${OUT:-/tmp/qv-out}"; mkdir -p "$OUT"
eval "$(bash tools/sysroot.sh "$debs")"
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,temperature.gpu --format=csv,noheader > "$OUT/gpu.txt" 2>&1
cmake -S . -B build-gpu $QV_SYSROOT_CMAKE_ARGS -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  > "$OUT/build.log" 2>&1 && cmake --build build-gpu -j16 >> "$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; exit 1; }
echo "build ok"
summary=()
if [ "$what" != bench ]; then
  export CK_FORK=no
  (cd build-gpu && ctest --output-on-failure -R 'test_gemm_pack|test_fp16') > "$OUT/ctest.log" 2>&1; echo "cpu tests rc=$?"
  timeout 300 build-gpu/test_gpu_gemm > "$OUT/gpu_gemm.log" 2>&1; rc=$?
  summary+=("test_gpu_gemm rc=$rc: $(grep 'gpu gemm cases' "$OUT/gpu_gemm.log")")
  grep -E "FAIL|first mismatch" "$OUT/gpu_gemm.log" | head -20
  for tool in memcheck racecheck; do
    QV_GPU_GEMM_SMALL=1 timeout 240 compute-sanitizer --tool $tool --error-exitcode 9 build-gpu/test_gpu_gemm \
      > "$OUT/sanitizer_$tool.log" 2>&1; rc=$?
    summary+=("compute-sanitizer $tool rc=$rc: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/sanitizer_$tool.log" | tail -1) / $(grep 'gpu gemm cases' "$OUT/sanitizer_$tool.log")")
  done
fi
if [ "$what" != test ]; then
  timeout 400 build-gpu/qvet bench --json "$OUT/bench.json" > "$OUT/bench.txt" 2>&1; echo "bench rc=$?"
  cat "$OUT/bench.txt"
fi
printf '%s\n' "${summary[@]}"
