#!/usr/bin/env bash
# One device call: build, test_gpu_gemm default family (the default rule incl. its wgmma shapes),
# then ncu on the wgmma kernel (qkv M=4096; down M=256 forced with QV_GEMM_VARIANT=wgmma) and the
# mma.sync kernel at down M=256. From the source root on the GPU machine, $OUT set, .gpu-debs carried.
set -u
bash tools/gpu_defaults_run.sh build > /dev/null 2>&1 || { echo build failed; tail -5 $OUT/build.log; exit 1; }
eval "$(bash tools/sysroot.sh .gpu-debs)"
export CK_FORK=no
QV_GPU_GEMM_FAMILIES=default timeout 200 build-gpu/test_gpu_gemm > $OUT/gemm_default.log 2>&1; echo "test_gpu_gemm default rc=$?"
grep -E "M=1000|gpu gemm cases|PATH" $OUT/gemm_default.log | head
S="--section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats --section SchedulerStats --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis"
for c in "qkv M=4096|wgmma_kernel|" "down M=256|wgmma_kernel|wgmma" "down M=256|gemm_kernel|"; do
  IFS='|' read -r shape k var <<< "$c"
  f=$OUT/ncu_$(echo "$shape${var:+_$var}" | tr ' =' '__').txt
  env ${var:+QV_GEMM_VARIANT=$var} QV_BENCH_GEMM_W4ONLY=1 timeout 120 ncu $S -k regex:$k --launch-skip 2 --launch-count 1 build-gpu/qvet bench --filter "^$shape\$" --json /tmp/n.json > $f 2>&1
  echo "== $shape $k ${var:-default}"; grep -E "Duration|DRAM Throughput|Compute \(SM\) Throughput|No Eligible|Issue Slots Busy|Executed Ipc Active|Achieved Occupancy|Registers Per|Grid Size|Block Limit Registers|Stall|L2 Hit Rate" $f | head -16
done
