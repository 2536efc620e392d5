#!/usr/bin/env bash
# One device-machine call for the GEMM decode kernel (issue 7, M <= 16; gpu/gemm_decode.cuh):
# build for sm_90, the full bit-exact case matrix (tests/test_gpu_gemm.c: every family, the
# decode path checked to have run for every M <= 16 case), compute-sanitizer memcheck + racecheck
# on the quick matrix, `qvet bench` with the default configuration (decode kernel) and with
# QV_GEMM_VARIANT=nodecode (the tiled kernels it replaces at M <= 16) in the same call, then a
# short table: weight stream / copy bandwidth at M = 1 and 16, new vs old. Logs + JSON in $OUT.
# From the source root on the GPU machine:
#   bash tools/gpu_gemv_run.sh [DEBS_DIR] [steps]
# steps: comma list of build,test,san,bench,old,eng,ncu (default: build,test,san,bench,old; eng =
# test_gpu_engines, whose decode steps now run the GEMMs at M = 1 on the decode kernel); split
# across two calls if one would pass the 10-minute limit, e.g. "build,test" then "san,bench,old"
# (build-gpu/ stays between calls). QV_GPU_GEMM_FAMILIES=default,decodesplit shortens the test;
# the sanitizers run the quick matrix under QV_SAN_FAMILIES (default: default,decodesplit,wide:
# the decode kernel unsplit and split, the tiled kernels' split-K at every M).
set -u
debs="${1:-../.gpu-debs}"; steps="${2:-build,test,san,bench,old}"
OUT="${OUT:-/tmp/qv-out}"; mkdir -p "$OUT"
has() { [[ ",$steps," == *",$1,"* ]]; }
t0=$SECONDS
stamp() { echo "[$((SECONDS - t0))s] $*"; }
[ -d "$debs" ] && eval "$(bash tools/sysroot.sh "$debs")"
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv,noheader > "$OUT/gpu.txt" 2>&1
summary=()
if has build; then
  cmake -S . -B build-gpu ${QV_SYSROOT_CMAKE_ARGS:-} -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    > "$OUT/build.log" 2>&1 && cmake --build build-gpu -j16 >> "$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; exit 1; }
  grep -iE "warning" "$OUT/build.log" | head -5
  stamp "build ok"
fi
export CK_FORK=no
if has test; then
  timeout 540 build-gpu/test_gpu_gemm > "$OUT/gpu_gemm.log" 2>&1; rc=$?
  summary+=("test_gpu_gemm (full matrix${QV_GPU_GEMM_FAMILIES:+, $QV_GPU_GEMM_FAMILIES}) rc=$rc: $(grep 'gpu gemm cases' "$OUT/gpu_gemm.log"); $(grep 'split along K' "$OUT/gpu_gemm.log")")
  grep -E "FAIL|first mismatch|PATH:" "$OUT/gpu_gemm.log" | head -20
  stamp "test done"
fi
if has san; then
  for tool in memcheck racecheck; do
    QV_GPU_GEMM_SMALL=1 QV_GPU_GEMM_FAMILIES="${QV_SAN_FAMILIES:-default,decodesplit,wide}" \
      timeout 280 compute-sanitizer --tool $tool --error-exitcode 9 build-gpu/test_gpu_gemm \
      > "$OUT/sanitizer_$tool.log" 2>&1; rc=$?
    summary+=("compute-sanitizer $tool rc=$rc: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/sanitizer_$tool.log" | tail -1) / $(grep 'gpu gemm cases' "$OUT/sanitizer_$tool.log")")
  done
  stamp "sanitizers done"
fi
if has eng; then
  timeout 300 build-gpu/test_gpu_engines > "$OUT/gpu_engines.log" 2>&1; rc=$?
  summary+=("test_gpu_engines rc=$rc: $(grep -E '^[0-9]+%|Checks' "$OUT/gpu_engines.log" | tail -1)")
  stamp "engines done"
fi
if has bench; then
  timeout 240 build-gpu/qvet bench --json "$OUT/bench.json" > "$OUT/bench.txt" 2>&1; echo "bench rc=$?"
  stamp "bench done"
fi
if has old; then
  # the substring filter "M=1" keeps M = 1, 16 (and 1024) rows: the decode range, in less time
  QV_GEMM_VARIANT=nodecode timeout 200 build-gpu/qvet bench --filter "M=1" --json "$OUT/bench_nodecode.json" \
    > "$OUT/bench_nodecode.txt" 2>&1; echo "nodecode bench rc=$?"
  stamp "nodecode bench done"
fi
if has ncu; then
  # one launch each (the 4th, after the warm-ups), clocks as the card runs them
  IFS=';' read -ra cases <<< "${QV_NCU_CASES:-PolicyW4Chn:o M=1;PolicyW4Chn:gate_up M=16}"
  i=0
  for c in "${cases[@]}"; do
    pol="${c%%:*}"; filt="${c#*:}"; i=$((i + 1))
    timeout 120 ncu --set full --clock-control none --kernel-name-base demangled -k "regex:decode.*$pol" --launch-skip 3 --launch-count 1 \
      build-gpu/qvet bench --filter "$filt" --json /tmp/ncu_bench.json > "$OUT/ncu_$i.txt" 2>&1
    echo "ncu $c rc=$?" >> "$OUT/ncu_summary.txt"
    grep -E "gemm_decode|Duration|DRAM Throughput|Achieved Occupancy|Theoretical Occupancy|Registers Per|Waves Per SM|No Eligible|L2 Hit|Grid Size" "$OUT/ncu_$i.txt" | grep -v "^==PROF==" | head -20 >> "$OUT/ncu_summary.txt"
  done
  stamp "ncu done"
fi
echo "==== summary"
cat "$OUT/gpu.txt"
printf '%s\n' "${summary[@]}"
[ -f "$OUT/ncu_summary.txt" ] && cut -c1-150 "$OUT/ncu_summary.txt"
[ -f "$OUT/bench.txt" ] && cat "$OUT/bench.txt"
if [ -f "$OUT/bench.json" ]; then
  python3 - "$OUT/bench.json" "$OUT/bench_nodecode.json" <<'PY'
import json, os, sys
new = json.load(open(sys.argv[1]))
old = json.load(open(sys.argv[2])) if os.path.exists(sys.argv[2]) else None
cp = new["copy_GBps_rw"]
def rows(d): return {(r["layer"], r["M"]): r for r in d["results"]}
nr, orow = rows(new), rows(old) if old else {}
print(f"\nM <= 16: weight stream / d2d copy ({cp:.0f} GB/s r+w, this run); new = decode kernel, old = QV_GEMM_VARIANT=nodecode; goal W4 >= 80%")
print(f"{'layer':8} {'M':>3} | {'chn us':>7} {'chn new':>8} {'old':>5} | {'g128 us':>7} {'g128 new':>8} {'old':>5} | {'w8a8 us':>7} {'w8 new':>7} {'old':>5}")
for (layer, M), r in nr.items():
    if M > 16: continue
    o = orow.get((layer, M))
    def cell(k):
        n = r[k]; ms = n.get("ms")
        if ms is None: return f"{'-':>7} {'-':>8} {'-':>5}"
        pn = 100 * n["weight_GBps_over_copy"]
        po = f"{100 * o[k]['weight_GBps_over_copy']:4.0f}%" if o and o[k].get("ms") else "    -"
        return f"{ms * 1e3:7.1f} {pn:7.0f}% {po}"
    print(f"{layer:8} {M:>3} | {cell('qvet_w4a8_chn')} | {cell('qvet_w4a8_g128')} | {cell('qvet_w8a8')}")
PY
fi
echo "[$((SECONDS - t0))s total]"
