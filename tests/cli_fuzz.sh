#!/usr/bin/env bash
# qvet fuzz: the corpus replays clean; a bug planted in the CPU emulation (QVET_FUZZ_PLANT, see
# include/qvet/kcases.h) is found by a short overflow run, minimized (one row) and saved as a
# corpus file that fails with the bug and passes without it; the corpus's edge cases catch both
# planted bugs; a malformed corpus file is exit 2 naming the file.
set -u
Q=$QVET
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
C=$QV_SOURCE_DIR/fuzz/corpus

$Q fuzz replay --corpus "$C" > $T/out || fail "corpus replay: $(tail -3 $T/out)"
grep -q "0 failed" $T/out || fail "replay summary"
# each planted bug is caught by the committed corpus
QVET_FUZZ_PLANT=1 $Q fuzz replay --corpus "$C" > $T/p1; [ $? = 1 ] || fail "plant 1 not caught by the corpus"
grep -q "FAIL .*epilogue-65510" $T/p1 || fail "plant 1: expected the 65510 case to fail"
QVET_FUZZ_PLANT=2 $Q fuzz replay --corpus "$C" > $T/p2; [ $? = 1 ] || fail "plant 2 not caught by the corpus"
grep -q "FAIL .*outlier-rowsum" $T/p2 || fail "plant 2: expected the outlier-rowsum case to fail"

# a short clean run finds nothing
mkdir $T/clean
$Q fuzz overflow --cases 300 --seed 7 --corpus $T/clean > $T/clean.out || fail "clean run: $(tail -3 $T/clean.out)"
[ -z "$(ls $T/clean)" ] || fail "clean run saved files"

# the fuzzer finds each planted bug from scratch, minimizes and saves it
for p in 1 2; do
  mkdir $T/f$p
  start=$(date +%s)
  QVET_FUZZ_PLANT=$p $Q fuzz overflow --time 60 --stop-after 1 --seed 3 --corpus $T/f$p > $T/f$p.out
  [ $? = 1 ] || fail "plant $p: fuzzer exit (expected 1): $(tail -3 $T/f$p.out)"
  echo "plant $p found in $(( $(date +%s) - start )) s: $(head -1 $T/f$p.out)"
  n=$(ls $T/f$p | wc -l)
  [ "$n" = 1 ] || fail "plant $p: expected one saved case, got $n"
  f=$(ls $T/f$p/*.json)
  [ "$(jq .M "$f")" = 1 ] || fail "plant $p: saved case not minimized to one row (M=$(jq .M "$f"))"
  QVET_FUZZ_PLANT=$p $Q fuzz replay --corpus $T/f$p > /dev/null; [ $? = 1 ] || fail "plant $p: saved case passes with the bug"
  $Q fuzz replay --corpus $T/f$p > /dev/null || fail "plant $p: saved case fails without the bug"
done

# malformed corpus files
mkdir $T/bad
echo '{"qvet_fuzz_case": 1, "kind": "gemm", "expect": "pass", "kernel": "w8a8", "M": 1, "N": 1, "K": 32, "x": "zz"}' > $T/bad/a.json
$Q fuzz replay --corpus $T/bad 2> $T/err; [ $? = 2 ] || fail "malformed corpus exit"
grep -q "a.json" $T/err || fail "malformed corpus message: $(cat $T/err)"
$Q fuzz replay --corpus $T/nonexistent 2> /dev/null; [ $? = 2 ] || fail "missing corpus exit"
$Q fuzz overflow --time -1 2> /dev/null; [ $? = 2 ] || fail "bad --time exit"
echo "PASS cli_fuzz"
