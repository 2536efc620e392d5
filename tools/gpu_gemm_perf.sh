#!/usr/bin/env bash
# One device-machine call for the GEMM performance work (issue 7): build, the full bit-exact
# case matrix, compute-sanitizer memcheck + racecheck on the quick matrix, the benchmark with
# the current configurations AND the legacy ones (QV_GEMM_VARIANT=legacy) in the same run,
# optional variant benchmarks, ncu on chosen cases, SASS of the kernels. Logs packed into $OUT/logs.tar.gz.
# Run from the source root on the GPU machine:
#   bash tools/gpu_gemm_perf.sh [DEBS_DIR] [steps]
# steps: comma list of build,test,san,bench,legacy,variants,ncu,sass (default: all)
set -u
debs="${1:-../.gpu-debs}"; steps="${2:-build,test,san,bench,legacy,variants,ncu,sass}"
# at most 8 files come back from the device tool: work in $W, pack it into $OUT at the end
RET="${OUT:-/tmp/qv-out}"; mkdir -p "$RET"
OUT=/tmp/qv-perf-work; rm -rf "$OUT"; mkdir -p "$OUT"
has() { [[ ",$steps," == *",$1,"* ]]; }
t0=$SECONDS
stamp() { echo "[$((SECONDS - t0))s] $*"; }
eval "$(bash tools/sysroot.sh "$debs")"
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv,noheader > "$OUT/gpu.txt" 2>&1
summary=()
if has build; then
  cmake -S . -B build-gpu $QV_SYSROOT_CMAKE_ARGS -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    > "$OUT/build.log" 2>&1 && cmake --build build-gpu -j16 >> "$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; exit 1; }
  stamp "build ok"
fi
if has test; then
  export CK_FORK=no
  timeout 400 build-gpu/test_gpu_gemm > "$OUT/gpu_gemm.log" 2>&1; rc=$?
  summary+=("test_gpu_gemm (full matrix) rc=$rc: $(grep 'gpu gemm cases' "$OUT/gpu_gemm.log")")
  grep -E "FAIL|first mismatch" "$OUT/gpu_gemm.log" | head -20
  stamp "test done"
fi
if has san; then
  for tool in memcheck racecheck; do
    QV_GPU_GEMM_SMALL=1 CK_FORK=no timeout 240 compute-sanitizer --tool $tool --error-exitcode 9 build-gpu/test_gpu_gemm \
      > "$OUT/sanitizer_$tool.log" 2>&1; rc=$?
    summary+=("compute-sanitizer $tool rc=$rc: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/sanitizer_$tool.log" | tail -1) / $(grep 'gpu gemm cases' "$OUT/sanitizer_$tool.log")")
  done
  stamp "sanitizers done"
fi
{
if has bench; then
  timeout 200 build-gpu/qvet bench --json "$OUT/bench.json" > "$OUT/bench.txt" 2>&1; echo "bench rc=$?"
  stamp "bench done"
fi
if has legacy; then
  QV_GEMM_VARIANT=legacy timeout 200 build-gpu/qvet bench --json "$OUT/bench_legacy.json" > "$OUT/bench_legacy.txt" 2>&1
  echo "legacy bench rc=$?"; stamp "legacy bench done"
fi
if has variants; then
  QV_GEMM_VARIANT=nosplit timeout 200 build-gpu/qvet bench --json "$OUT/bench_nosplit.json" > "$OUT/bench_variants.txt" 2>&1
  echo "nosplit bench rc=$?"; stamp "variants done"
fi
} 2>&1 | tee "$OUT/bench_steps.log" | grep -E "rc=|\] "
if has ncu; then
  # one launch each (the 4th, after the warm-ups), clocks as the card runs them
  IFS=';' read -ra cases <<< "${QV_NCU_CASES:-PolicyW4G128:o M=64;PolicyW4Chn:o M=16}"
  i=0
  for c in "${cases[@]}"; do
    pol="${c%%:*}"; filt="${c#*:}"; i=$((i + 1))
    timeout 120 ncu --set full --clock-control none --kernel-name-base demangled -k "regex:$pol" --launch-skip 3 --launch-count 1 \
      build-gpu/qvet bench --filter "$filt" --json /tmp/ncu_bench.json > "$OUT/ncu_$i.txt" 2>&1
    echo "ncu $c rc=$?" >> "$OUT/ncu_summary.txt"
    grep -E "gemm_kernel|Duration|Memory Throughput|DRAM Throughput|Compute \(SM\) Throughput|Achieved Occupancy|Theoretical Occupancy|Registers Per|Block Limit|L2 Hit|Executed Ipc A|Issue Slots Busy|No Eligible|Warp Cycles Per Issued|One or More|Grid Size|Waves Per SM|L1/TEX Hit|Mem Busy|Max Bandwidth" "$OUT/ncu_$i.txt" | grep -v "^==PROF==" | head -40 >> "$OUT/ncu_summary.txt"
  done
  stamp "ncu done"
fi
if has sass; then
  cuobjdump -sass build-gpu/libqvet_lib.a 2>/dev/null > "$OUT/sass_all.txt" || cuobjdump -sass build-gpu/qvet > "$OUT/sass_all.txt" 2>&1
  gzip -f "$OUT/sass_all.txt"
  stamp "sass done"
fi
echo "==== summary"
cat "$OUT/gpu.txt"
printf '%s\n' "${summary[@]}"
[ -f "$OUT/bench.txt" ] && cat "$OUT/bench.txt"
[ -f "$OUT/bench_legacy.txt" ] && { echo "--- legacy configurations, same run:"; grep -v '^device' "$OUT/bench_legacy.txt"; }
[ -f "$OUT/bench_variants.txt" ] && { echo "--- QV_GEMM_VARIANT=nosplit, same run:"; cat "$OUT/bench_variants.txt"; }
[ -f "$OUT/ncu_summary.txt" ] && cut -c1-150 "$OUT/ncu_summary.txt"
tar -C "$OUT" -czf "$RET/logs.tar.gz" . && for f in bench.json bench_legacy.json bench.txt; do [ -f "$OUT/$f" ] && cp "$OUT/$f" "$RET/"; done
true
