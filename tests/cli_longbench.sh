#!/usr/bin/env bash
# qvet longbench --score: task totals equal LongBench's own scorer / scorer_e output (from
# tests/fixtures/longbench/expected.json, written by tools/longbench_reference.py), JSON output,
# and exit codes / messages on bad input.
set -u
QVET=${QVET:?path to qvet}
FX="${QV_SOURCE_DIR:?}/tests/fixtures/longbench"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
ok() { echo "ok   $1"; }
bad() { echo "FAIL $1"; fails=$((fails + 1)); }
expect_rc() { # NAME WANT_RC STDERR_SUBSTRING -- args
  local name=$1 rc=$2 err=$3; shift 4
  "$QVET" "$@" >"$T/out" 2>"$T/err" </dev/null
  local got=$?
  if [ "$got" != "$rc" ]; then bad "$name: exit $got, want $rc ($(head -c 300 "$T/err"))"; return; fi
  if [ "$err" != "-" ] && ! grep -qF -- "$err" "$T/err"; then bad "$name: stderr '$(head -c 300 "$T/err")' lacks '$err'"; return; fi
  ok "$name"
}

# expected totals, formatted as the table prints them (%.2f; both are 2-decimal roundings, so equal
# doubles <=> equal text), read from expected.json without python: "task": number lines of "scores"
expected_scores() {
  sed -n '/^ "scores": {/,/^ }/p' "$FX/expected.json" | grep -E '^  "' | sed -E 's/^  "([^"]+)": ([-0-9.e]+),?$/\1 \2/' |
    while read -r t v; do printf '%s %.2f\n' "$t" "$v"; done | sort
}
expect_rc "--score on the fixtures" 0 - -- longbench --score "$FX/pred" --json "$T/s.json"
got=$(awk 'NR > 1 { print $1, $4 }' "$T/out" | sort)
want=$(expected_scores)
if [ -n "$want" ] && [ "$got" = "$want" ]; then ok "every task total equals LongBench's scorer ($(echo "$want" | wc -l) tasks)"
else bad "task totals differ: got
$got
want
$want"; fi
grep -q '"schema":[[:space:]]*"qvet.longbench.score/1"' "$T/s.json" && ok "--json has the versioned schema" || bad "--json schema missing"
grep -q '"narrativeqa"' "$T/s.json" && ok "--json lists tasks" || bad "--json lacks tasks"

# LongBench-E: bucket columns of hotpotqa and trec against scorer_e
expect_rc "--score --e" 0 - -- longbench --score "$FX/pred" --e --json "$T/e.json"
for task in hotpotqa trec gov_report; do
  want=$(sed -n "/^ \"scores_e\": {/,/^ }/p" "$FX/expected.json" | sed -n "/^  \"$task\": {/,/^  }/p" |
    grep -E '"(0-4k|4-8k|8k\+)"' | sed -E 's/.*: (null|[-0-9.e]+),?$/\1/' |
    while read -r v; do if [ "$v" = null ]; then echo nan; else printf '%.2f\n' "$v"; fi; done | paste -sd' ')
  got=$(awk -v t="$task" '$1 == t { print $4, $5, $6 }' "$T/out")
  [ -n "$want" ] && [ "$got" = "$want" ] && ok "LongBench-E buckets of $task equal scorer_e ($got)" || bad "$task buckets: got '$got' want '$want'"
done
grep -q '"score":[[:space:]]*null' "$T/e.json" && ok "empty bucket is null in JSON" || bad "empty bucket not null"

# bad input
expect_rc "missing directory" 2 "not found" -- longbench --score "$T/nope"
mkdir -p "$T/empty"
expect_rc "no jsonl files" 2 "no *.jsonl" -- longbench --score "$T/empty"
mkdir -p "$T/badjson"
printf '{"pred":"x","answers":["x"],"all_classes":null}\n{"pred": oops}\n' >"$T/badjson/narrativeqa.jsonl"
expect_rc "bad JSON line names file:line" 2 "narrativeqa.jsonl:2:" -- longbench --score "$T/badjson"
mkdir -p "$T/zh"
cp "$FX/pred/narrativeqa.jsonl" "$T/zh/"
printf '{"pred":"x","answers":["x"],"all_classes":["x"]}\n' >"$T/zh/lsht.jsonl"
expect_rc "Chinese task refused" 2 "jieba" -- longbench --score "$T/zh"
expect_rc "--english-only skips it" 0 "skipping" -- longbench --score "$T/zh" --english-only
mkdir -p "$T/unk"
printf '{"pred":"x","answers":["x"],"all_classes":null}\n' >"$T/unk/mytask.jsonl"
expect_rc "unknown task" 2 "not a LongBench task" -- longbench --score "$T/unk"
mkdir -p "$T/noe"
printf '{"pred":"x","answers":["x"],"all_classes":null}\n' >"$T/noe/narrativeqa.jsonl"
expect_rc "--e needs length" 2 "length" -- longbench --score "$T/noe" --e
expect_rc "no data source" 2 "either --data" -- longbench
expect_rc "engine flag with --score" 2 "does not go with --score" -- longbench --score "$FX/pred" --synthetic x
expect_rc "--score needs a value" 2 "needs a value" -- longbench --score
expect_rc "unwritable --json" 2 - -- longbench --score "$FX/pred" --json "$T/nodir/x.json"

[ "$fails" -eq 0 ] && echo "all ok" || echo "$fails failed"
[ "$fails" -eq 0 ]
