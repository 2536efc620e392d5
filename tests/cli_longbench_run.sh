#!/usr/bin/env bash
# qvet longbench with engines, end to end on the built-in synthetic model (ref-fp32 vs ref-qoq,
# qvet's synthetic tasks from a corpus, 2 samples per task):
#   - JSON (schema qvet.longbench/1) and prediction files; `longbench --score` on the prediction
#     files gives the very scores of the run (plain and --e buckets);
#   - R = C: every prediction identical, every delta 0;
#   - --shard 0/2 + 1/2 + merge == one run; a killed run resumed == one run;
#   - --write-data then --data/--longbench-config (the LongBench-data path) == the synthetic run;
#   - --max-length truncates; validate --longbench-synthetic adds per-task rows and the HTML bars;
#   - bad input: exit 2 naming the file (missing config, Chinese task, malformed JSONL, ...).
set -u
Q=${QVET:?}
command -v jq >/dev/null || { echo "SKIP cli_longbench_run: jq absent"; exit 77; }
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
fails=0
ok() { echo "ok   $1"; }
bad() { echo "FAIL $1"; fails=$((fails + 1)); }
# a corpus of qvet's own: 100 distinct paragraphs of 31 words, words of 5-8 letters from an LCG
C=$T/corpus.txt
awk 'BEGIN { x = 12345; for (p = 1; p <= 100; p++) { line = "Section" p;
  for (w = 0; w < 30; w++) { n = 5 + (x % 4); word = "";
    for (k = 0; k < n; k++) { x = (x * 1103515245 + 12345) % 2147483648; word = word sprintf("%c", 97 + int(x / 65536) % 26) }
    line = line " " word }
  print line ".\n" } }' > $C
R="--threads 1 --ref ref-fp32 --cand ref-qoq --synthetic $C --samples 2 --words 120"
strip() { jq -S 'del(.meta.command)' "$1"; }

"$Q" longbench $R --json $T/one.json --pred-dir $T/pred --write-data $T/data > $T/one.out 2> $T/one.err; rc=$?
[ $rc = 0 ] && ok "synthetic run (exit 0)" || bad "synthetic run exit $rc: $(tail -5 $T/one.err)"
[ "$(jq -r '.schema + "/" + (.schema_version|tostring)' $T/one.json)" = qvet.longbench/1 ] && ok "versioned schema" || bad "schema"
[ "$(jq '.summary.tasks|keys|length' $T/one.json)" = 3 ] && ok "3 synthetic tasks" || bad "tasks: $(jq -c '.summary.tasks|keys' $T/one.json)"
[ "$(jq '.samples|length' $T/one.json)" = 6 ] && [ "$(jq .complete $T/one.json)" = true ] && ok "6 samples, complete" || bad "sample count"
jq -e '[.samples[]|.ref.n_gen>=1 and .cand.n_gen>=1 and (.score.ref|type=="number")]|all' $T/one.json >/dev/null && ok "samples carry generations and item scores" || bad "sample fields"

# the prediction files reproduce the run's scores through the exact scorer
for who in ref cand; do
  "$Q" longbench --score $T/pred/$who --json $T/s_$who.json > /dev/null 2>&1 || bad "--score $who failed"
  "$Q" longbench --score $T/pred/$who --e --json $T/e_$who.json > /dev/null 2>&1 || bad "--score --e $who failed"
  want=$(jq -S --arg w $who '.summary.tasks|map_values(.[$w])' $T/one.json)
  got=$(jq -S '.tasks|map_values(.score)' $T/s_$who.json)
  [ "$want" = "$got" ] && ok "--score on $who predictions == the run's $who scores" || bad "$who: run $want vs --score $got"
  want=$(jq -S --arg w $who '.summary.tasks|map_values(.buckets|map_values(.[$w]))' $T/one.json)
  got=$(jq -S '.tasks|map_values(.buckets|map_values(.score))' $T/e_$who.json)
  [ "$want" = "$got" ] && ok "--score --e buckets of $who == the run's" || bad "$who buckets: $want vs $got"
done

# R = C: identical predictions, zero deltas
"$Q" longbench --threads 1 --ref ref-fp32 --cand ref-fp32 --synthetic $C --samples 2 --words 120 --json $T/same.json > /dev/null 2>&1 || bad "R=C run"
jq -e '[.summary.tasks[]|.identical==1 and .delta==0 and .token_agreement==1]|all' $T/same.json > /dev/null && ok "R = C: identical, delta 0" || bad "R = C: $(jq -c .summary.tasks $T/same.json)"

# shards + merge == one run
"$Q" longbench $R --shard 0/2 --json $T/s0.json > /dev/null 2>&1 && "$Q" longbench $R --shard 1/2 --json $T/s1.json > /dev/null 2>&1 || bad "shard runs"
[ "$(jq '.samples|length' $T/s0.json)" = 3 ] && [ "$(jq .complete $T/s0.json)" = true ] && ok "shard 0/2 runs 3 of 6 samples" || bad "shard size"
"$Q" merge $T/merged.json $T/s0.json $T/s1.json > /dev/null 2>&1 || bad "merge failed"
[ "$(strip $T/merged.json)" = "$(strip $T/one.json)" ] && ok "merge of 2 shards == one run (samples, scores, summary)" || bad "merge differs: $(diff <(strip $T/merged.json) <(strip $T/one.json) | head -5)"
"$Q" merge $T/m2.json $T/s0.json $T/s0.json > /dev/null 2> $T/err; [ $? = 2 ] && grep -q "appears in two shards" $T/err && ok "merge refuses duplicate samples" || bad "merge dup: $(cat $T/err)"
"$Q" merge $T/m3.json $T/s0.json $T/same.json > /dev/null 2> $T/err; [ $? = 2 ] && grep -q "meta differs" $T/err && ok "merge refuses another run" || bad "merge other run: $(cat $T/err)"

# killed after 2 committed samples, resumed == one run
(QVET_TEST_KILL_AFTER=2 exec "$Q" longbench $R --json $T/res.json > /dev/null 2>&1); rc=$?
[ $rc = 137 ] && [ "$(jq '.samples|length' $T/res.json)" = 2 ] && [ "$(jq .complete $T/res.json)" = false ] && ok "killed run left 2 samples" || bad "kill: rc $rc, $(jq '.samples|length' $T/res.json 2>&1)"
"$Q" longbench $R --json $T/res.json --resume > /dev/null 2> $T/err || bad "resume failed: $(cat $T/err)"
grep -q "resuming: 2 samples" $T/err && ok "resume skips the 2 samples" || bad "resume message: $(cat $T/err)"
[ "$(strip $T/res.json)" = "$(strip $T/one.json)" ] && ok "resumed run == one run" || bad "resume differs: $(diff <(strip $T/res.json) <(strip $T/one.json) | head -5)"
"$Q" longbench $R --seed 9 --json $T/res.json --resume > /dev/null 2> $T/err; [ $? = 2 ] && grep -q "different run" $T/err && ok "resume refuses another run's file" || bad "resume other: $(cat $T/err)"

# the LongBench-data path on the same samples (written by the first run's --write-data)
"$Q" longbench --threads 1 --ref ref-fp32 --cand ref-qoq --data $T/data --longbench-config $T/data --json $T/data.json --pred-dir $T/pred2 > /dev/null 2> $T/err || bad "--data run: $(cat $T/err)"
# (the data path lists the task files alphabetically: compare samples sorted by task and index)
[ "$(jq -S '{s:.summary,p:(.samples|sort_by(.task,.index))}' $T/data.json)" = "$(jq -S '{s:.summary,p:(.samples|sort_by(.task,.index))}' $T/one.json)" ] &&
  ok "--data/--longbench-config on the written data == the synthetic run" || bad "data path differs"
cmp -s $T/pred/ref/qvet_kv_retrieval.jsonl $T/pred2/ref/qvet_kv_retrieval.jsonl && ok "same prediction files" || bad "prediction files differ"

# truncation: max_length 64 cuts every prompt in the middle to about 64 tokens
"$Q" longbench $R --max-length 64 --tasks qvet_passage_retrieval --json $T/tr.json > /dev/null 2>&1 || bad "--max-length run"
jq -e '[.samples[]|.truncated and .n_full > 64 and .n_prompt <= 72]|all' $T/tr.json > /dev/null && ok "--max-length 64 truncates every prompt" || bad "truncation: $(jq -c '[.samples[]|[.n_full,.n_prompt,.truncated]]' $T/tr.json)"

# validate with the synthetic tasks: one row per task, HTML bars
B="--ctx 96 --max-tokens 384 --lengths 200 --depths 0 --threads 1"
"$Q" validate --ref ref-fp32 --cand ref-fp32 $B --longbench-synthetic $C --longbench-samples 2 --report $T/v > $T/v.out 2>&1; rc=$?
[ $rc = 0 ] && ok "validate with --longbench-synthetic: GO for R = C" || bad "validate exit $rc: $(tail -5 $T/v.out)"
[ "$(jq '[.checks[]|select(.name|startswith("longbench_delta."))]|length' $T/v/report.json)" = 3 ] && ok "3 LongBench rows in the go/no-go table" || bad "rows: $(jq -c '[.checks[].name]' $T/v/report.json)"
jq -e '[.checks[]|select(.name=="longbench_delta.qvet_kv_retrieval")|.threshold==-25 and (.command|startswith("qvet longbench"))]|all' $T/v/report.json > /dev/null && ok "per-task threshold and reproduce command" || bad "row content"
grep -q "<title>LongBench per task</title>" $T/v/report.html && grep -q "qvet longbench" $T/v/report.html && ok "report.html has the LongBench bars and command" || bad "html"
[ -f $T/v/longbench.json ] && [ -f $T/v/longbench-pred/cand/qvet_passage_count.jsonl ] && ok "validate writes longbench.json and predictions" || bad "validate files"

# bad input
expect2() { # NAME STDERR_SUBSTRING -- args   (R = C = ref-fp32: no quantization at start-up)
  local name=$1 want=$2; shift 3
  "$Q" "$@" --ref ref-fp32 --cand ref-fp32 > /dev/null 2> $T/err; local rc=$?
  if [ $rc = 2 ] && grep -qF -- "$want" $T/err; then ok "$name"; else bad "$name: exit $rc, stderr $(head -c 300 $T/err)"; fi
}
mkdir -p $T/bad
cp $T/data/qvet_kv_retrieval.jsonl $T/bad/
expect2 "--data without --longbench-config" "needs --longbench-config" -- longbench --data $T/bad
expect2 "missing dataset2prompt.json" "$T/bad/dataset2prompt.json" -- longbench --data $T/bad --longbench-config $T/bad
cp $T/data/dataset2*.json $T/bad/
printf '{"input": "x", "context": "y", "answers": ["z"], "all_classes": null, "length": 1}\n' > $T/bad/lsht.jsonl
expect2 "Chinese task refused" "jieba" -- longbench --data $T/bad --longbench-config $T/bad --tasks lsht
expect2 "Chinese task file in the folder refused" "jieba" -- longbench --data $T/bad --longbench-config $T/bad
rm $T/bad/lsht.jsonl
printf '{"input": "x", "context": "y", "answers": ["z"]}\n{"input": oops}\n' > $T/bad/qvet_passage_count.jsonl
expect2 "malformed JSONL names file:line" "$T/bad/qvet_passage_count.jsonl:2:" -- longbench --data $T/bad --longbench-config $T/bad
rm $T/bad/qvet_passage_count.jsonl
expect2 "task without a template" "no string template for task 'narrativeqa'" -- longbench --data $T/bad --longbench-config $T/bad --tasks narrativeqa
expect2 "unknown task" "not a LongBench task" -- longbench --data $T/bad --longbench-config $T/bad --tasks mytask
expect2 "both sources" "either --data" -- longbench --data $T/bad --synthetic $C
expect2 "unknown synthetic task" "not one of qvet's synthetic tasks" -- longbench --synthetic $C --tasks hotpotqa
printf 'too short.\n' > $T/small.txt
expect2 "corpus too small names it" "$T/small.txt" -- longbench --threads 1 --synthetic $T/small.txt
expect2 "missing corpus" "$T/nope.txt" -- longbench --synthetic $T/nope.txt
expect2 "--resume needs --json" "--resume needs --json" -- longbench --synthetic $C --resume
expect2 "bad chat template" "exactly one {prompt}" -- longbench --threads 1 --synthetic $C --samples 1 --words 120 --chat nothing

[ "$fails" -eq 0 ] && echo "cli_longbench_run: all ok" || echo "cli_longbench_run: $fails failed"
[ "$fails" -eq 0 ]
