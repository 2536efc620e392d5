#!/usr/bin/env bash
# One device-machine call for the GPU engines (issue 8): build the three targets, the engine
# tests (model-level figures), the decode benchmark, compute-sanitizer on the quick engine subset,
# each under its own time limit. Logs/JSON under $OUT. From the source root on the GPU machine:
#   QV_GPU_MODEL=../.gpu-model/qvet-tiny-llama bash tools/gpu_engines_run.sh [DEBS_DIR] [steps]
# steps: any of "test bench kernels kmemcheck memcheck racecheck cli" (default: test bench memcheck).
# cli: tests/cli_dtype.sh with the GPU build's qvet (gpu-fp16 --dtype bf16 end to end). A table of
# the steps' exit codes is printed last.
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
summary=()
for s in $steps; do
  rc=-
  case $s in
    test) timeout 400 build-gpu/test_gpu_engines > "$OUT/test_gpu_engines.log" 2>&1; rc=$?; echo "test_gpu_engines rc=$rc"
          grep -E "^figure|differ|BF16|^[0-9]+%|SKIP|Failure|Error|error" "$OUT/test_gpu_engines.log" | head -80 ;;
    kernels) timeout 240 build-gpu/test_gpu_kernels > "$OUT/test_gpu_kernels.log" 2>&1; rc=$?; echo "test_gpu_kernels rc=$rc"
          grep -E "^[0-9]+%|Failure|worst|bf16|engine ops" "$OUT/test_gpu_kernels.log" | head -30 ;;
    cli) cmake --build build-gpu -j16 --target qvet >> "$OUT/build.log" 2>&1 \
           && QVET=build-gpu/qvet timeout 120 bash tests/cli_dtype.sh > "$OUT/cli_dtype.log" 2>&1; rc=$?
         echo "cli_dtype rc=$rc"; grep -E "FAIL|gpu-fp16 --dtype bf16|differ|cli_dtype:" "$OUT/cli_dtype.log" | head ;;
    bench) timeout 220 build-gpu/bench/bench_gpu_engines "$OUT/bench_gpu_engines.json" > "$OUT/bench.txt" 2>&1; rc=$?
           echo "bench rc=$rc"; cat "$OUT/bench.txt" | tail -12 ;;
    kmemcheck) QV_GPU_KERNELS_SMALL=1 timeout 200 compute-sanitizer --tool memcheck --error-exitcode 9 \
           build-gpu/test_gpu_kernels > "$OUT/sanitizer_kernels_memcheck.log" 2>&1; rc=$?; echo "compute-sanitizer kernels memcheck rc=$rc"
           grep -E "ERROR SUMMARY|^[0-9]+%" "$OUT/sanitizer_kernels_memcheck.log" | tail -2 ;;
    memcheck|racecheck) QV_GPU_ENGINES_QUICK=1 timeout 200 compute-sanitizer --tool $s --error-exitcode 9 \
           build-gpu/test_gpu_engines > "$OUT/sanitizer_$s.log" 2>&1; rc=$?; echo "compute-sanitizer $s rc=$rc"
           grep -E "ERROR SUMMARY|RACECHECK SUMMARY|^[0-9]+%" "$OUT/sanitizer_$s.log" | tail -3 ;;
  esac
  echo "[$s done at $(( $(date +%s) - t0 )) s]"
  summary+=("$(printf '%-10s rc=%s' "$s" "$rc")")
done
echo "---- steps ----"
printf '%s\n' "${summary[@]}"
