#!/usr/bin/env bash
# One device-machine call that checks the merged tree end to end on a GPU: full build, every GPU
# ctest (kernels, GEMMs, engines), the kernel case matrix on the GPU backend, and the gate with
# its GPU model checks. Logs under $OUT. From the source root on the GPU machine:
#   QV_GPU_MODEL=../.gpu-model/qvet-tiny-llama bash tools/gpu_full_run.sh [DEBS_DIR]
set -u
debs="${1:-../.gpu-debs}"
OUT="${OUT:-/tmp/qv-out}"; mkdir -p "$OUT"
eval "$(bash tools/sysroot.sh "$debs")"
t0=$(date +%s)
cmake -S . -B build-gpu $QV_SYSROOT_CMAKE_ARGS -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  > "$OUT/build.log" 2>&1 && cmake --build build-gpu -j16 >> "$OUT/build.log" 2>&1 \
  || { grep -E "error" "$OUT/build.log" | head -20; tail -20 "$OUT/build.log"; exit 1; }
echo "build ok ($(( $(date +%s) - t0 )) s); $(build-gpu/qvet --version)"
timeout 300 ctest --test-dir build-gpu -R "gpu" --output-on-failure > "$OUT/ctest_gpu.log" 2>&1
echo "ctest gpu rc=$?"; grep -E "Test +#|tests passed|gpu gemm cases|^figure" "$OUT/ctest_gpu.log" | head -20
timeout 120 build-gpu/qvet kernels --quick --backend gpu --json "$OUT/kernels_gpu.json" > "$OUT/kernels_gpu.txt" 2>&1
echo "qvet kernels --quick --backend gpu rc=$?"; tail -2 "$OUT/kernels_gpu.txt"
timeout 200 build-gpu/qvet gate --json "$OUT/gate.json" --junit "$OUT/gate.xml" > "$OUT/gate.txt" 2>&1
echo "qvet gate rc=$?"; grep -E "^model/|gate:|GPU" "$OUT/gate.txt" | tail -8
echo "[done at $(( $(date +%s) - t0 )) s]"
