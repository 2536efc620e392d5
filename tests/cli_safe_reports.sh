#!/usr/bin/env bash
# Safe reports: every report is written to a temp file and renamed (ref/core/fileio.c), and ppl and
# compare commit each finished chunk that way, so a run killed with SIGKILL at any moment leaves
# valid JSON: the previous report byte for byte (killed before its first chunk) or the new run's
# committed chunks ("complete": false), and `--resume` completes it to exactly what an
# uninterrupted run writes. The kills here come from outside at fixed delays (not the
# QVET_TEST_KILL_AFTER hook, which cli_compare.sh and cli_ppl_shard.sh use), so they can land
# mid-write.
set -u
Q=$QVET
command -v jq >/dev/null || { echo "SKIP cli_safe_reports: jq absent"; exit 77; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
for i in $(seq 1 1500); do printf 'word%d and some more text. ' $((i % 97)); done > $T/text.txt

# ppl: a finished report, then another run into the same path killed mid-run
P="--engine ref-fp32 --text $T/text.txt --ctx 64 --max-tokens 16384 --threads 1"
$Q ppl --engine ref-fp32 --text $T/text.txt --ctx 32 --max-tokens 96 --json $T/p.json > /dev/null || fail "ppl"
cp $T/p.json $T/p.before
for d in 0.3 1; do
  (timeout -s KILL $d $Q ppl $P --json $T/p.json > /dev/null 2>&1)
  rc=$?
  [ $rc = 137 ] || fail "ppl not killed at ${d}s (exit $rc): the run must outlast the delay"
  cmp -s $T/p.json $T/p.before || jq -e '.meta.ctx == 64 and .complete == false' $T/p.json > /dev/null ||
    fail "ppl killed at ${d}s left neither the previous report nor a valid partial one"
  cp $T/p.before $T/p.json
done
# ppl: killed at growing delays, each run resuming the last, then compared with one run
$Q ppl $P --json $T/pone.json > /dev/null || fail "ppl uninterrupted"
killed=0
for d in 0.3 0.6 1.2; do
  res=""; [ -e $T/pr.json ] && res=--resume
  (timeout -s KILL $d $Q ppl $P --json $T/pr.json $res > /dev/null 2>&1)
  rc=$?
  [ $rc = 137 ] && killed=$((killed + 1))
  [ -e $T/pr.json ] && { jq -e . $T/pr.json > /dev/null || fail "ppl report not valid JSON after a kill at ${d}s"; }
  [ $rc = 0 ] && break
done
[ $killed -ge 1 ] || fail "no ppl run was killed (too fast to test)"
$Q ppl $P --json $T/pr.json --resume > /dev/null 2>&1 || fail "ppl final resume"
cmp <(jq -S 'del(.meta.command, .run)' $T/pone.json) <(jq -S 'del(.meta.command, .run)' $T/pr.json) ||
  fail "resumed ppl result differs from an uninterrupted run"

# compare: uninterrupted reference run, then runs killed at several delays, each resumed
A="--ref ref-fp32 --cand ref-fp32 --cand-round-bits 3 --ctx 32 --max-tokens 320 --text $T/text.txt"
$Q compare $A --json $T/one.json > /dev/null || fail "compare"
killed=0
for d in 0.5 1 2; do
  res=""; [ -e $T/r.json ] && res=--resume
  (timeout -s KILL $d $Q compare $A --json $T/r.json $res > /dev/null 2>&1)
  rc=$?
  [ $rc = 137 ] && killed=$((killed + 1))
  [ -e $T/r.json ] && { jq -e . $T/r.json > /dev/null || fail "report not valid JSON after a kill at ${d}s"; }
  [ $rc = 0 ] && break
done
[ $killed -ge 1 ] || fail "no run was killed (too fast to test)"
$Q compare $A --json $T/r.json --resume > /dev/null 2>&1 || fail "final resume"
cmp <(jq -S .summary $T/one.json) <(jq -S .summary $T/r.json) || fail "resumed summary differs from an uninterrupted run"
echo "PASS cli_safe_reports"
