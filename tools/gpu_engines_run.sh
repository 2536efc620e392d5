#!/usr/bin/env bash
# One device-machine call for the GPU engines (issue 8): build the three targets, the engine
# tests (model-level figures), the decode benchmark, compute-sanitizer on the quick engine subset,
# each under its own time limit. Logs/JSON under $OUT. From the source root on the GPU machine:
#   QV_GPU_MODEL=../.gpu-model/qvet-tiny-llama bash tools/gpu_engines_run.sh [DEBS_DIR] [steps]
# steps: any of "test bench kernels kmemcheck memcheck racecheck" (default: test bench memcheck).
set -u
debs="${1:-../.gpu-debs}"; steps="${2:-test bench memcheck}"
OUT="${OUT:-/tmp/qv-out}"; mkdir -p "$OUT"
eval "$(bash tools/sysroot.sh "$debs")"
t0=$(date +%s)
cmake -S . -B build-gpu $QV_SYSROOT_CMAKE_ARGS -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  > "$OUT/build.log" 2>&1 \
  && cmake --build build-gpu -j16 --target test_gpu_engines test_gpu_kernels bench_gpu_engines >> "$OUT/build.log" 2>&1 \
  || { grep -E "error" "$OUT/build.log" | head -20; tail -20 "$OUT/build.log"; exit 1; }
echo "build ok ($(( $(date +%s) - t0 )) s)"
export CK_FORK=no
for s in $steps; do
  case $s in
    test) timeout 200 build-gpu/test_gpu_engines > "$OUT/test_gpu_engines.log" 2>&1; echo "test_gpu_engines rc=$?"
          grep -E "^figure|differ|^[0-9]+%|SKIP|Failure|Error|error" "$OUT/test_gpu_engines.log" | head -60 ;;
    kernels) timeout 120 build-gpu/test_gpu_kernels > "$OUT/test_gpu_kernels.log" 2>&1; echo "test_gpu_kernels rc=$?"
          grep -E "^[0-9]+%|Failure|worst" "$OUT/test_gpu_kernels.log" | head ;;
    bench) timeout 150 build-gpu/bench/bench_gpu_engines "$OUT/bench_gpu_engines.json" > "$OUT/bench.txt" 2>&1
           echo "bench rc=$?"; cat "$OUT/bench.txt" | tail -12 ;;
    kmemcheck) QV_GPU_KERNELS_SMALL=1 timeout 150 compute-sanitizer --tool memcheck --error-exitcode 9 \
           build-gpu/test_gpu_kernels > "$OUT/sanitizer_kernels_memcheck.log" 2>&1; echo "compute-sanitizer kernels memcheck rc=$?"
           grep -E "ERROR SUMMARY|^[0-9]+%" "$OUT/sanitizer_kernels_memcheck.log" | tail -2 ;;
    memcheck|racecheck) QV_GPU_ENGINES_QUICK=1 timeout 150 compute-sanitizer --tool $s --error-exitcode 9 \
           build-gpu/test_gpu_engines > "$OUT/sanitizer_$s.log" 2>&1; echo "compute-sanitizer $s rc=$?"
           grep -E "ERROR SUMMARY|RACECHECK SUMMARY|^[0-9]+%" "$OUT/sanitizer_$s.log" | tail -3 ;;
  esac
  echo "[$s done at $(( $(date +%s) - t0 )) s]"
done
