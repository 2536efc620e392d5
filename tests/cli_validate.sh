#!/bin/bash
# qvet validate end to end on the built-in synthetic model (small budget):
#   - R = C = ref-fp32 on the same weights: GO (exit 0), report.json + report.html written;
#   - a planted bad candidate (weights rounded to 0 mantissa bits): NO-GO (exit 1), with the
#     failing figures named;
#   - the shipped thresholds file equals the embedded defaults; bad thresholds file: exit 2;
#   - default candidate ref-qoq when not built: exit 2 with a clear message.
set -u
Q=${QVET:?}
command -v jq >/dev/null || { echo "SKIP cli_validate: jq absent"; exit 77; }
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
B="--ctx 96 --max-tokens 768 --lengths 200,300 --depths 0,1"

$Q validate --ref ref-fp32 --cand ref-fp32 $B --report $T/go > $T/go.out 2>&1; rc=$?
[ $rc = 0 ] || fail "identical engines should be GO (exit $rc): $(tail -20 $T/go.out)"
grep -q "verdict: GO" $T/go.out || fail "verdict line"
[ "$(jq -r .verdict $T/go/report.json)" = go ] || fail "report.json verdict"
[ "$(jq '.checks|length' $T/go/report.json)" = 6 ] || fail "6 checks"
jq -e '[.checks[]|.command|startswith("qvet ")]|all' $T/go/report.json >/dev/null || fail "reproduce commands"
[ "$(jq .compare.kld.max $T/go/report.json)" = 0 ] || fail "identical engines: KLD max should be 0"
grep -q "<svg" $T/go/report.html && grep -q ">GO<" $T/go/report.html || fail "html"
! grep -Eq "<script|src=['\"]http|href=['\"]http" $T/go/report.html || fail "report must be self-contained"

$Q validate --ref ref-fp32 --cand ref-fp32 --cand-round-bits 0 $B --report $T/bad > $T/bad.out 2>&1; rc=$?
[ $rc = 1 ] || fail "planted bad candidate should be NO-GO exit 1, got $rc: $(tail -5 $T/bad.out)"
grep -q "verdict: NO-GO" $T/bad.out || fail "no-go line"
jq -e '[.checks[]|select(.name=="kld_mean")|.pass]==[false]' $T/bad/report.json >/dev/null || fail "kld_mean should fail"
grep -q "NO-GO" $T/bad/report.html || fail "html no-go"

cmp <($Q validate --print-thresholds) $QV_SOURCE_DIR/evals/thresholds.default.json || fail "shipped thresholds differ from the embedded defaults (run tools/embed_thresholds.sh)"
echo '{"schema":"qvet.thresholds","schema_version":1,"thresholds":{"kld_mean":{"why":"x"}}}' > $T/t.json
$Q validate --ref ref-fp32 --cand ref-fp32 $B --thresholds $T/t.json --report $T/x 2> $T/err; [ $? = 2 ] || fail "bad thresholds exit"
grep -q "needs exactly one of" $T/err || fail "thresholds message: $(cat $T/err)"
$Q validate $B --report $T/q 2> $T/err; rc=$?
if grep -q "not available in this build" $T/err; then [ $rc = 2 ] || fail "ref-qoq absent should exit 2"; fi
$Q validate --model /nonexistent --report $T/y 2> $T/err; [ $? = 2 ] || fail "--model without --text should exit 2"
$Q validate --ref ref-fp32 --cand ref-fp32 --longbench $T/nolb --longbench-config b --report $T/z 2> $T/err; [ $? = 2 ] || fail "longbench hook: missing data dir"
grep -q "$T/nolb: LongBench data directory not found" $T/err || fail "longbench message: $(cat $T/err)"
$Q validate --ref ref-fp32 --cand ref-fp32 --longbench $T --report $T/z 2> $T/err; [ $? = 2 ] || fail "--longbench without --longbench-config"
mkdir -p $T/lbd; $Q validate --ref ref-fp32 --cand ref-fp32 --longbench $T/lbd --longbench-config $T/lbd --report $T/z 2> $T/err; [ $? = 2 ] || fail "missing LongBench config"
grep -q "dataset2prompt.json" $T/err || fail "missing config message: $(cat $T/err)"
echo "cli_validate: all checks passed"
