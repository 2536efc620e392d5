#!/usr/bin/env bash
# Safe reports: every report is written to a temp file and renamed (ref/core/fileio.c), so a run
# killed with SIGKILL at any moment leaves the previous report byte for byte (ppl) or the last
# committed partial report, valid JSON (compare), and `compare --resume` completes it with the
# summary of an uninterrupted run. The kills here come from outside at fixed delays (not the
# QVET_TEST_KILL_AFTER hook, which cli_compare.sh uses), so they can land mid-write.
set -u
Q=$QVET
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
for i in $(seq 1 1500); do printf 'word%d and some more text. ' $((i % 97)); done > $T/text.txt

# ppl: a finished report, then a longer run into the same path killed mid-run
$Q ppl --engine ref-fp32 --text $T/text.txt --ctx 32 --max-tokens 96 --json $T/p.json > /dev/null || fail "ppl"
cp $T/p.json $T/p.before
for d in 0.5 1.5; do
  (timeout -s KILL $d $Q ppl --engine ref-fp32 --text $T/text.txt --ctx 128 --max-tokens 8192 --json $T/p.json > /dev/null 2>&1)
  rc=$?
  [ $rc = 137 ] || fail "ppl not killed at ${d}s (exit $rc): the run must outlast the delay"
  cmp -s $T/p.json $T/p.before || fail "ppl report changed by a run killed at ${d}s"
done

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
echo "PASS cli_safe_reports ($killed kills)"
