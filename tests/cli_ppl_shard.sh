#!/bin/bash
# qvet ppl --shard / --resume / qvet merge on the built-in synthetic model (ref-fp32, 10 chunks):
#   - shards 0/3, 1/3, 2/3 merged (in any order) == one run: the whole JSON, every chunk and every
#     summary figure, bit for bit (only the command line and the run's timing may differ);
#   - the summary equals the EVALS.md formulas evaluated independently (jq) on the stored chunk
#     sums, and the pooled per-shard formula of qvet/eval_ppl.h agrees to rounding;
#   - killed (SIGKILL, QVET_TEST_KILL_AFTER hook) after 4 chunks: a valid partial JSON;
#     --resume then gives one run's JSON; the same for a shard;
#   - bad shard specs, a --resume file of another run, bad merge inputs: exit 2 with a message.
set -u
Q=${QVET:?}
command -v jq >/dev/null || { echo "SKIP cli_ppl_shard: jq absent"; exit 77; }
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
for i in $(seq 1 400); do printf 'word%d and some more text. ' $((i % 97)); done > $T/text.txt
A="--engine ref-fp32 --text $T/text.txt --ctx 32 --max-tokens 320 --threads 1"
same() { cmp <(jq -S 'del(.meta.command, .run)' "$1") <(jq -S 'del(.meta.command, .run)' "$2"); }

$Q ppl $A --json $T/one.json > $T/one.out 2> $T/one.err || fail "ppl exit $?"
[ ! -s $T/one.err ] || fail "stderr not a TTY, yet ppl wrote to it: $(cat $T/one.err)"
jq -e '.schema == "qvet.ppl" and .schema_version == 2 and .complete and .summary.chunks == 10 and (.chunks|length) == 10' \
  $T/one.json > /dev/null || fail "one run's JSON: $(jq -c '{schema, schema_version, complete, summary}' $T/one.json)"

# shards + merge == one run
for i in 0 1 2; do $Q ppl $A --shard $i/3 --json $T/s$i.json > /dev/null || fail "shard $i/3 exit $?"; done
[ "$(jq -c '[.chunks[].index]' $T/s1.json)" = "[1,4,7]" ] || fail "shard 1/3 holds $(jq -c '[.chunks[].index]' $T/s1.json)"
jq -e '.complete' $T/s2.json > /dev/null || fail "a finished shard is not complete"
$Q merge $T/m.json $T/s2.json $T/s0.json $T/s1.json > $T/m.out || fail "merge exit $?"
same $T/one.json $T/m.json || fail "merged JSON differs from one run"
grep -q "^$(grep -o '^ppl [0-9.]* (95% CI [0-9. -]*)' $T/one.out)" $T/m.out || fail "merge printed $(cat $T/m.out)"
jq -e --slurpfile s0 $T/s0.json --slurpfile s1 $T/s1.json --slurpfile s2 $T/s2.json \
  '(.run.seconds - ($s0[0].run.seconds + $s1[0].run.seconds + $s2[0].run.seconds)) | fabs < 1e-9' $T/m.json > /dev/null \
  || fail "merged seconds" # merge adds in argument order (s2, s0, s1): equal up to FP64 rounding, not bit for bit

# the summary against EVALS.md, evaluated here from the stored sums: x_c = S_c / n_c,
# mean, se = sd(n-1)/sqrt(N), ppl = exp(mean), CI exp(mean -+ 1.96 se)
jq -e 'def near(a; b): ((a - b) | fabs) <= 1e-12 * (b | fabs);
  [.chunks[] | .nll_sum / .n] as $x | ($x|length) as $N | ($x|add/$N) as $m
  | (((([$x[] | (. - $m) * (. - $m)] | add) / ($N - 1)) | sqrt) / ($N|sqrt)) as $se
  | near(.summary.mean_nll; $m) and near(.summary.se_nll; $se) and near(.summary.ppl; $m|exp)
  and near(.summary.ppl_ci95[0]; $m - 1.96 * $se | exp) and near(.summary.ppl_ci95[1]; $m + 1.96 * $se | exp)
  and .summary.scored_tokens == 310' $T/one.json > /dev/null || fail "summary differs from the formulas"
# pooled shard summaries (N_k, mean_k, se_k) -> the union's mean and se, up to rounding
jq -s -e '[.[] | {N: .summary.chunks, m: .summary.mean_nll, se: .summary.se_nll}] as $k
  | ($k | map(.N) | add) as $N | ($k | map(.N * .m) | add / $N) as $m
  | ($k | map(.se * .se * .N * (.N - 1) + .N * (.m - $m) * (.m - $m)) | add) as $M2
  | ((($M2 / ($N - 1)) | sqrt) / ($N | sqrt)) as $se
  | [$m, $se]' $T/s0.json $T/s1.json $T/s2.json > $T/pooled.json || fail "pooled formula"
jq -e --slurpfile p $T/pooled.json '(.summary.mean_nll - $p[0][0] | fabs) <= 1e-12 * .summary.mean_nll
  and (.summary.se_nll - $p[0][1] | fabs) <= 1e-9 * .summary.se_nll' $T/one.json > /dev/null ||
  fail "pooled shards $(cat $T/pooled.json) vs one run $(jq -c '[.summary.mean_nll, .summary.se_nll]' $T/one.json)"

# kill mid-run, resume
QVET_TEST_KILL_AFTER=4 $Q ppl $A --json $T/r.json > /dev/null 2>&1
rc=$?; [ $rc = 137 ] || fail "expected SIGKILL (137), got $rc"
jq -e '(.chunks|length) == 4 and .complete == false and .summary.chunks == 4' $T/r.json > /dev/null || fail "partial file: $(jq -c '{complete, summary}' $T/r.json)"
$Q ppl $A --json $T/r.json --resume > /dev/null 2> $T/err || fail "resume exit $?: $(cat $T/err)"
grep -q "resuming: 4 chunks" $T/err || fail "resume message: $(cat $T/err)"
same $T/one.json $T/r.json || fail "resumed JSON differs from one run"
# a resumed shard, merged with the other
QVET_TEST_KILL_AFTER=2 $Q ppl $A --shard 0/2 --json $T/h0.json > /dev/null 2>&1; [ $? = 137 ] || fail "shard kill"
$Q ppl $A --shard 0/2 --json $T/h0.json --resume > /dev/null 2>&1 || fail "shard resume"
$Q ppl $A --shard 1/2 --json $T/h1.json > /dev/null || fail "shard 1/2"
$Q merge $T/hm.json $T/h0.json $T/h1.json > /dev/null || fail "merge of halves"
same $T/one.json $T/hm.json || fail "resumed shard + shard differs from one run"
# resuming a finished result computes nothing and changes no figure
$Q ppl $A --json $T/r.json --resume > /dev/null 2>&1 && same $T/one.json $T/r.json || fail "resume of a complete file"

# a --resume file of another run
$Q ppl $A --ctx 16 --json $T/r.json --resume 2> $T/err; [ $? = 2 ] && grep -q "different run (ctx differs)" $T/err || fail "ctx mismatch: $(cat $T/err)"
$Q ppl $A --shard 1/2 --json $T/r.json --resume 2> $T/err; [ $? = 2 ] && grep -q "shard differs" $T/err || fail "shard mismatch: $(cat $T/err)"
$Q ppl $A --no-bos --json $T/r.json --resume 2> $T/err; [ $? = 2 ] && grep -q "differs" $T/err || fail "bos mismatch: $(cat $T/err)"
$Q ppl $A --resume 2> $T/err; [ $? = 2 ] && grep -q "needs --json" $T/err || fail "resume without json: $(cat $T/err)"

# bad shard specs
for s in 3/3 -1/3 1/0 0/0 a/b 1/ /3 1/3x 1 "" 2/-3; do
  $Q ppl $A --shard "$s" 2> $T/err; rc=$?
  [ $rc = 2 ] && grep -q -- "--shard" $T/err || fail "--shard '$s': exit $rc, $(cat $T/err)"
done
$Q ppl $A --shard 2>$T/err; [ $? = 2 ] || fail "--shard without a value"
$Q ppl $A --shard 11/12 2> $T/err; [ $? = 2 ] && grep -q "none of the 10 chunks" $T/err || fail "empty shard: $(cat $T/err)"

# bad merge inputs
$Q merge $T/o.json $T/s0.json $T/s0.json 2> $T/err; [ $? = 2 ] && grep -q "appears twice" $T/err || fail "duplicate shard: $(cat $T/err)"
$Q ppl $A --ctx 16 --shard 1/3 --json $T/x.json > /dev/null || fail "ctx 16 shard"
$Q merge $T/o.json $T/s0.json $T/x.json 2> $T/err; [ $? = 2 ] && grep -q "ctx differs" $T/err || fail "other run: $(cat $T/err)"
$Q compare --ref ref-fp32 --cand ref-fp32 --text $T/text.txt --ctx 32 --max-tokens 64 --json $T/c.json > /dev/null || fail "compare"
$Q merge $T/o.json $T/s0.json $T/c.json 2> $T/err; [ $? = 2 ] && grep -q "not a qvet ppl result" $T/err || fail "ppl + compare: $(cat $T/err)"
jq '.chunks[0].index = 1' $T/s0.json > $T/bad.json
$Q merge $T/o.json $T/bad.json 2> $T/err; [ $? = 2 ] && grep -q "chunks\[0\] is malformed" $T/err || fail "chunk of another shard: $(cat $T/err)"
jq '.schema_version = 1' $T/s0.json > $T/bad.json
$Q merge $T/o.json $T/bad.json 2> $T/err; [ $? = 2 ] && grep -q "schema_version 1" $T/err || fail "old schema: $(cat $T/err)"
[ ! -e $T/o.json ] || fail "a refused merge wrote its output"
$Q merge $T/part.json $T/s0.json $T/s2.json > /dev/null 2> $T/err || fail "partial merge exit $?"
grep -q "still missing" $T/err && [ "$(jq .complete $T/part.json)" = false ] || fail "partial merge not flagged"
echo "cli_ppl_shard: all checks passed"
