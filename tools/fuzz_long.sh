#!/usr/bin/env bash
# Runs every libFuzzer harness (fuzz/harness/) for a while: tools/fuzz_long.sh [SECONDS] [NAME...]
# (default 600 s each, all harnesses, one after the other, at nice 19). Builds build-fuzz with
# clang when needed. New inputs go to build-fuzz/fuzz-work/<name>/ (never the source tree);
# crashes to build-fuzz/fuzz-crash/<name>/. Prints executions, coverage and features per harness
# and a summary line each (docs/fuzz.md records the figures). QV_FUZZ_BUILD=DIR uses another build
# folder (e.g. to keep fuzzing a fixed build while build-fuzz is rebuilt).
set -u
cd "$(dirname "$0")/.."
secs=${1:-600}
shift || true
B=${QV_FUZZ_BUILD:-build-fuzz}
if [ ! -x $B/fuzz/harness/fz_config ]; then
  CC=clang-14 cmake -S . -B $B -DQV_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug > /dev/null || exit 2
fi
nice -n 19 cmake --build $B -j2 > /dev/null || exit 2
names=("$@")
[ ${#names[@]} = 0 ] && names=($(ls fuzz/harness/fz_*.c | sed 's|.*/fz_||; s|\.c$||'))
rc=0
for n in "${names[@]}"; do
  mkdir -p $B/fuzz-work/$n $B/fuzz-crash/$n
  log=$B/fuzz-work/$n.log
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    nice -n 19 $B/fuzz/harness/fz_$n -max_total_time=$secs -max_len=131072 -timeout=20 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix=$B/fuzz-crash/$n/ $B/fuzz-work/$n fuzz/seeds/$n > $log 2>&1
  r=$?
  execs=$(grep -a "stat::number_of_executed_units" $log | awk '{print $2}')
  cov=$(grep -a "^#[0-9]" $log | tail -1 | grep -o "cov: [0-9]*" | awk '{print $2}')
  ft=$(grep -a "^#[0-9]" $log | tail -1 | grep -o "ft: [0-9]*" | awk '{print $2}')
  echo "$n: ${secs} s, exit $r, executions ${execs:-?}, cov ${cov:-?}, ft ${ft:-?}, crashes $(ls $B/fuzz-crash/$n | wc -l)"
  [ $r = 0 ] || rc=1
done
exit $rc
