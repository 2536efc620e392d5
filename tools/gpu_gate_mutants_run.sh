#!/usr/bin/env bash
# One device-machine call for the gate's GPU mutants (docs/gate.md "Mutation self-test"): a
# QV_MUTANTS=ON build for sm_90, `qvet gate --self-test --quick` with the GPU kernels' mutants
# (each mutant: its targeted cases on the CPU emulation and on the GPU, both must fail), the
# normal GPU ctests on that build (no mutant selected: the planted branches must not change a
# clean run), and the quick gate twice, the second against the first's JSON (`--baseline`: GPU
# kernel times against themselves, so any time "regression" there is timing noise). Each step
# has its own time limit; a short table comes last. Logs/JSON under $OUT. From the source root:
#   bash tools/gpu_gate_mutants_run.sh [DEBS_DIR]
# Budget: well under 8 minutes on 16 cores (build ~1-2 min, self-test ~1 min, ctests ~2 min,
# two quick gates ~1 min).
set -u
debs="${1:-../.gpu-debs}"
OUT="${OUT:-/tmp/qv-out}"; mkdir -p "$OUT"
[ -d "$debs" ] && eval "$(bash tools/sysroot.sh "$debs")"
B=build-gpu-mut
t0=$(date +%s)
rows=()
step() { rows+=("$(printf '%-34s %-6s %5s s  %s' "$1" "$2" "$3" "$4")"); }

s=$(date +%s)
cmake -S . -B $B ${QV_SYSROOT_CMAKE_ARGS:-} -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQV_MUTANTS=ON \
  > "$OUT/build.log" 2>&1 \
  && cmake --build $B -j16 --target qvet test_gpu_gemm test_gpu_kernels test_gpu_engines test_gate_baseline >> "$OUT/build.log" 2>&1 \
  || { grep -E "error" "$OUT/build.log" | head -20; tail -20 "$OUT/build.log"; exit 1; }
grep -q "QV_CUDA=ON.*QV_MUTANTS=ON" "$OUT/build.log" || { echo "not a CUDA mutants build"; grep "qvet: QV_CUDA" "$OUT/build.log"; exit 1; }
step "build (QV_MUTANTS=ON, sm_90)" ok $(( $(date +%s) - s )) "$($B/qvet --version 2>&1 | head -1)"

# 1. the self-test: clean gate (GPU cases included) must pass, every mutant killed on both sides
s=$(date +%s)
timeout 300 $B/qvet gate --self-test --quick > "$OUT/selftest.txt" 2>&1; rc=$?
grep -E "^clean gate|^mutant |^GPU mutants|^self-test" "$OUT/selftest.txt" | cut -c1-150
grep -E "FAIL|ERROR" "$OUT/selftest.txt" | head -10
step "gate --self-test --quick" $rc $(( $(date +%s) - s )) "$(grep -E '^self-test' "$OUT/selftest.txt" | cut -c1-110)"

# 2. the normal GPU ctests and the baseline rules, on the mutants build with no mutant selected
s=$(date +%s)
timeout 240 ctest --test-dir $B -R "gpu|gate_baseline" --output-on-failure > "$OUT/ctest.log" 2>&1; rc=$?
grep -E "Test +#|tests passed" "$OUT/ctest.log" | head -8
step "ctest -R 'gpu|gate_baseline'" $rc $(( $(date +%s) - s )) "$(grep -E 'tests passed' "$OUT/ctest.log")"

# 3. GPU kernel times against themselves: the clean quick gate, then again with --baseline
s=$(date +%s)
timeout 150 $B/qvet gate --quick --json "$OUT/gate1.json" > "$OUT/gate1.txt" 2>&1; rc1=$?
timeout 150 $B/qvet gate --quick --json "$OUT/gate2.json" --junit "$OUT/gate2.xml" --baseline "$OUT/gate1.json" \
  > "$OUT/gate2.txt" 2>&1; rc2=$?
grep -E "^gate:|^baseline " "$OUT/gate1.txt" "$OUT/gate2.txt"
grep -E "REGRESSION" "$OUT/gate2.txt" | head -10
python3 - "$OUT/gate2.json" <<'PY' 2>/dev/null | tee "$OUT/times.txt"
import json, sys
d = json.load(open(sys.argv[1]))
ch = [c['figures']['seconds'] for c in d['cases'] if c['group'] == 'baseline' and 'seconds' in c.get('figures', {})]
if ch:
    rel = sorted(f['change'] for f in ch)
    n = len(rel)
    print(f"kernel times vs themselves: {n} GPU cases, relative change median {rel[n//2]:+.3f}, "
          f"p90 {rel[int(n*0.9)]:+.3f}, max {rel[-1]:+.3f}; flagged {sum(f['regressed'] for f in ch)}")
PY
step "gate --quick; --baseline of itself" "$rc1/$rc2" $(( $(date +%s) - s )) \
  "$(grep -oE '[0-9]+ cases compared, [0-9]+ regressed' "$OUT/gate2.txt"); $(grep -oE 'median [^,]*, p90 [^,]*' "$OUT/times.txt")"

echo
echo "== gpu_gate_mutants_run.sh: $(( $(date +%s) - t0 )) s"
printf '%s\n' "${rows[@]}"
