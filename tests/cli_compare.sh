#!/bin/bash
# qvet compare / niah / merge on the built-in synthetic model, R = ref-fp32, C = ref-fp32 on the
# same model with weights rounded to 3 mantissa bits (a non-trivial candidate):
#   - one run == 3 shards merged (summary figures identical, bit for bit);
#   - killed after 4 chunks (SIGKILL, via the QVET_TEST_KILL_AFTER hook) leaves a valid partial
#     JSON; --resume then gives one run's summary;
#   - niah: grid shape, determinism (two runs identical), shard+merge equality;
#   - bad input: exit 2 with a message naming the problem.
set -u
Q=${QVET:?}
command -v jq >/dev/null || { echo "SKIP cli_compare: jq absent"; exit 77; }
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
A="--ref ref-fp32 --cand ref-fp32 --cand-round-bits 3 --ctx 96 --max-tokens 960"

$Q compare $A --json $T/one.json > $T/one.out || fail "compare exit $?"
grep -q "KLD mean" $T/one.out || fail "no KLD line"
[ "$(jq '.summary.chunks' $T/one.json)" = 10 ] || fail "expected 10 chunks"
[ "$(jq '.schema_version' $T/one.json)" = 1 ] || fail "schema_version"
jq -e '.summary.kld.mean.value > 0 and .summary.top1_agreement.value < 1' $T/one.json >/dev/null || fail "trivial case"
for i in 0 1 2; do $Q compare $A --shard $i/3 --json $T/s$i.json > /dev/null || fail "shard $i"; done
[ "$(jq '.chunks|length' $T/s1.json)" = 3 ] || fail "shard 1/3 of 10 chunks should hold 3"
$Q merge $T/m.json $T/s2.json $T/s0.json $T/s1.json > /dev/null || fail "merge"
cmp <(jq -S .summary $T/one.json) <(jq -S .summary $T/m.json) || fail "merged summary differs from one run"
[ "$(jq .complete $T/m.json)" = true ] || fail "merged not complete"
# duplicate shard refused
$Q merge $T/m2.json $T/s0.json $T/s0.json 2> $T/err; [ $? = 2 ] || fail "duplicate shard should exit 2"
grep -q "appears twice" $T/err || fail "duplicate message: $(cat $T/err)"

# kill mid-run, resume
QVET_TEST_KILL_AFTER=4 $Q compare $A --json $T/r.json > /dev/null 2>&1
rc=$?; [ $rc = 137 ] || fail "expected SIGKILL (137), got $rc"
[ "$(jq '.chunks|length' $T/r.json)" = 4 ] || fail "partial file should hold 4 chunks"
[ "$(jq .complete $T/r.json)" = false ] || fail "partial file marked complete"
$Q compare $A --json $T/r.json --resume > /dev/null 2> $T/err || fail "resume exit"
grep -q "resuming: 4 chunks" $T/err || fail "resume message"
cmp <(jq -S .summary $T/one.json) <(jq -S .summary $T/r.json) || fail "resumed summary differs"
# resume against a different run is refused
$Q compare --ref ref-fp32 --cand ref-fp32 --cand-round-bits 3 --ctx 64 --max-tokens 960 --json $T/r.json --resume 2> $T/err
[ $? = 2 ] && grep -q "different run (ctx differs)" $T/err || fail "mismatched resume: $(cat $T/err)"

# bad input
$Q compare $A --text $T/nope.txt 2> $T/err; [ $? = 2 ] || fail "missing text exit"
grep -q "nope.txt" $T/err || fail "missing text message"
$Q compare $A --shard 3/3 2> $T/err; [ $? = 2 ] || fail "bad shard exit"
$Q compare --ref ref-fp32 --cand ref-fp32 --ctx 5000 2> $T/err; [ $? = 2 ] || fail "ctx > max exit"
grep -q "ctx 5000 outside" $T/err || fail "ctx message: $(cat $T/err)"
echo '{"schema":"qvet.compare","schema_version":1,"meta":{}}' > $T/bad.json
$Q merge $T/o.json $T/bad.json 2> $T/err; [ $? = 2 ] || fail "malformed merge input exit"
$Q merge $T/o.json $T/one.out 2> $T/err; [ $? = 2 ] || fail "non-JSON merge input exit"
$Q compare --ref ref-fp32 --cand gpu-nonsense 2> $T/err; [ $? = 2 ] || fail "unknown engine exit"

# niah: shape, determinism, shards
N="--ref ref-fp32 --cand ref-fp32 --cand-round-bits 3 --lengths 200,300 --depths 0,0.5,1 --haystack $QV_SOURCE_DIR/docs/evals.md"
$Q niah $N --json $T/n1.json > /dev/null || fail "niah exit"
$Q niah $N --json $T/n2.json > /dev/null || fail "niah exit 2"
[ "$(jq '.summary.lp_ref|length' $T/n1.json)" = 2 ] && [ "$(jq '.summary.lp_ref[0]|length' $T/n1.json)" = 3 ] || fail "grid shape"
[ "$(jq '.cells|length' $T/n1.json)" = 6 ] || fail "cells"
cmp <(jq -S '.cells,.summary' $T/n1.json) <(jq -S '.cells,.summary' $T/n2.json) || fail "niah not deterministic"
jq -e '[.cells[].number|test("^[0-9]{7}$")]|all' $T/n1.json >/dev/null || fail "numbers"
jq -e '[.cells[] | .n_prompt <= .length] | all' $T/n1.json >/dev/null || fail "prompt longer than asked"
$Q niah $N --shard 0/2 --json $T/p0.json > /dev/null && $Q niah $N --shard 1/2 --json $T/p1.json > /dev/null || fail "niah shards"
$Q merge $T/pm.json $T/p1.json $T/p0.json > /dev/null || fail "niah merge"
cmp <(jq -S '.cells,.summary' $T/n1.json) <(jq -S '.cells,.summary' $T/pm.json) || fail "niah merge differs"
$Q niah $N --passkey --lengths 200 --depths 0.5 --json $T/pk.json > /dev/null || fail "passkey"
[ "$(jq -r .meta.mode $T/pk.json)" = passkey ] || fail "passkey mode"
$Q niah $N --depths 1.5 2> $T/err; [ $? = 2 ] || fail "bad depth exit"
$Q niah --ref ref-fp32 --cand ref-fp32 --lengths 20 2> $T/err; [ $? = 2 ] && grep -q "shorter than the needle" $T/err || fail "short length: $(cat $T/err)"
echo "cli_compare: all checks passed"
