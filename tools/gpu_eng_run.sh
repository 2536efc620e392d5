#!/usr/bin/env bash
# One device-machine call for issue 8 (fused kernels, paged attention, engines): build, kernel
# differential test, compute-sanitizer memcheck + racecheck (small cases), benchmark. Logs and
# JSON under $OUT; short summary last. Run from the source root on the GPU machine:
#   bash tools/gpu_eng_run.sh [DEBS_DIR] [what: all|test|bench]
set -u
debs="${1:-../.gpu-debs}"; what="${2:-all}"
OUT="${OUT:-/tmp/qv-out}"; mkdir -p "$OUT"
eval "$(bash tools/sysroot.sh "$debs")"
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,temperature.gpu --format=csv,noheader > "$OUT/gpu.txt" 2>&1
cmake -S . -B build-gpu $QV_SYSROOT_CMAKE_ARGS -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DQV_SHARED_DIR="$PWD/../.gpu-model-shared" > "$OUT/build.log" 2>&1 \
  && cmake --build build-gpu -j16 >> "$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; exit 1; }
echo "build ok"
summary=()
export CK_FORK=no
if [ "$what" != bench ]; then
  for t in test_gpu_kernels test_gpu_engines; do
    [ -x build-gpu/$t ] || continue
    timeout 400 build-gpu/$t > "$OUT/$t.log" 2>&1; rc=$?
    summary+=("$t rc=$rc: $(grep -E '^[0-9]+%:|ties|worst' "$OUT/$t.log" | tr '\n' ' ')")
    grep -E "Failure|FAIL|Assertion|error" "$OUT/$t.log" | head -10
  done
  for tool in memcheck racecheck; do
    QV_GPU_KERNELS_SMALL=1 timeout 200 compute-sanitizer --tool $tool --error-exitcode 9 build-gpu/test_gpu_kernels \
      > "$OUT/sanitizer_$tool.log" 2>&1; rc=$?
    summary+=("compute-sanitizer $tool rc=$rc: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/sanitizer_$tool.log" | tail -1) / $(grep -E '^[0-9]+%:' "$OUT/sanitizer_$tool.log" | tail -1)")
  done
fi
if [ "$what" != test ]; then
  timeout 200 build-gpu/bench/bench_gpu_attn "$OUT/bench_attn.json" > "$OUT/bench_attn.txt" 2>&1; echo "bench rc=$?"
  cat "$OUT/bench_attn.txt"
fi
printf '%s\n' "${summary[@]}"
