#!/bin/bash
# qvet trace end to end on the built-in synthetic model (short context):
#   - ref-fp32 vs ref-qoq: report.json (schema qvet.trace) + self-contained report.html with SVG,
#     the ref-qoq+fp_kv variant (closer to R than the KV4 candidate), and the kv ablation, which
#     must lower the KLD;
#   - a planted fault: candidate ref-fp32 on weights rounded to 2 mantissa bits vs ref-fp32: KLD > 0;
#   - determinism: two runs give the same JSON apart from "timing" and "meta.command";
#   - bad flags and inputs: exit 2 with a message naming the problem.
set -u
Q=${QVET:?}
command -v jq >/dev/null || { echo "SKIP cli_trace: jq absent"; exit 77; }
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
B="--ctx 160 --ablate kv --ablate w:0 --ablate-tokens 96 --threads 1"

$Q trace $B --report $T/a --json $T/a.json > $T/a.out 2>&1; rc=$?
[ $rc = 0 ] || fail "trace exit $rc: $(tail -20 $T/a.out)"
J=$T/a/report.json
[ "$(jq -r .schema $J)" = qvet.trace ] && [ "$(jq .schema_version $J)" = 1 ] || fail "schema"
cmp -s $J $T/a.json || fail "--json must equal report.json"
[ "$(jq '.variants|length' $J)" = 2 ] || fail "cand and cand+fp_kv variants"
[ "$(jq -r '.variants[1].label' $J)" = "ref-qoq+fp_kv" ] || fail "fp_kv variant label"
jq -e '.variants[0].kld.mean > 0' $J >/dev/null || fail "ref-qoq must differ from ref-fp32"
jq -e '.variants[0].kld.mean > .variants[1].kld.mean' $J >/dev/null || fail "KV16 candidate should be closer than KV4"
jq -e '(.variants[0].layers|length) == (.variants[0].layer_ranking|length)' $J >/dev/null || fail "ranking covers every layer"
jq -e '(.variants[0].worst|length) == 10' $J >/dev/null || fail "10 worst positions by default"
jq -e '[.variants[0].worst[].kld] == ([.variants[0].worst[].kld]|sort|reverse)' $J >/dev/null || fail "worst sorted by KLD"
jq -e '(.ablation.entries|length) == 2' $J >/dev/null || fail "two ablations"
jq -e '[.ablation.entries[]|select(.label=="kv")|.kld < $c] == [true]' --argjson c "$(jq .ablation.cand_kld $J)" $J >/dev/null \
    || fail "kv ablation must lower the KLD"
jq -e '.timing.peak_rss_kb > 0 and .timing.seconds > 0' $J >/dev/null || fail "timing"
grep -q "<svg" $T/a/report.html || fail "html has no SVG"
! grep -Eq "<script|src=['\"]http|href=['\"]http" $T/a/report.html || fail "report must be self-contained"
grep -q "layers by first jump" $T/a.out || fail "summary on stdout"

$Q trace $B --report $T/b > $T/b.out 2>&1 || fail "second run"
strip() { jq -S 'del(.timing) | del(.meta.command)' "$1"; }
[ "$(strip $J)" = "$(strip $T/b/report.json)" ] || fail "two runs differ"

$Q trace --ref ref-fp32 --cand ref-fp32 --cand-round-bits 2 --ctx 96 --report $T/c > $T/c.out 2>&1 || fail "rounded candidate: $(tail -5 $T/c.out)"
jq -e '(.variants|length) == 1 and .variants[0].kld.mean > 0' $T/c/report.json >/dev/null || fail "planted rounding: one variant, KLD > 0"

$Q trace --ctx 96 > $T/e.out 2>&1; [ $? = 2 ] && grep -q -- "--report" $T/e.out || fail "missing --report"
$Q trace --ctx 96 --ablate x:1 --report $T/e > $T/e.out 2>&1; [ $? = 2 ] && grep -q "x:1" $T/e.out || fail "bad --ablate"
$Q trace --ctx 96 --ablate w:99 --report $T/e > $T/e.out 2>&1; [ $? = 2 ] || fail "layer out of range"
$Q trace --ctx 96 --cand ref-fp32 --ablate kv --report $T/e > $T/e.out 2>&1; [ $? = 2 ] || fail "--ablate on ref-fp32"
$Q trace --ctx 96 --positions 50-200 --report $T/e > $T/e.out 2>&1; [ $? = 2 ] && grep -q "positions" $T/e.out || fail "positions out of range"
$Q trace --ctx 999999 --report $T/e > $T/e.out 2>&1; [ $? = 2 ] || fail "ctx beyond the model"
$Q trace --text /nonexistent/x.txt --report $T/e > $T/e.out 2>&1; [ $? = 2 ] && grep -q "/nonexistent/x.txt" $T/e.out || fail "missing text"
echo "cli_trace: ok"
