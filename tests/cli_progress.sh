#!/bin/bash
# CLI.md / issue 9: every eval draws a progress bar with an ETA on stderr when stderr is a TTY,
# and prints nothing but its summary (stdout) when it is not (CI). Each eval runs twice on the
# built-in synthetic model: with stderr in a file (must stay empty) and under script(1), which
# gives it a pty (the bar, with "ETA", must appear). Also checks that each eval's --json carries
# its schema and an integer schema_version.
set -u
Q=${QVET:?}
command -v jq >/dev/null || { echo "SKIP cli_progress: jq absent"; exit 77; }
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
for i in $(seq 1 400); do printf 'word%d and some more text. ' $((i % 97)); done > $T/text.txt
R="--ref ref-fp32 --cand ref-fp32 --cand-round-bits 3 --threads 1"

declare -A RUN SCHEMA
RUN[ppl]="ppl --engine ref-fp32 --threads 1 --text $T/text.txt --ctx 32 --max-tokens 192 --json $T/ppl.json"
RUN[compare]="compare $R --text $T/text.txt --ctx 32 --max-tokens 192 --json $T/compare.json"
RUN[niah]="niah $R --lengths 120,160 --depths 0,1 --haystack $T/text.txt --json $T/niah.json"
RUN[trace]="trace $R --text $T/text.txt --ctx 48 --report $T/trace --json $T/trace.json"
SCHEMA[ppl]=qvet.ppl; SCHEMA[compare]=qvet.compare; SCHEMA[niah]=qvet.niah; SCHEMA[trace]=qvet.trace
for e in ppl compare niah trace; do
  $Q ${RUN[$e]} > $T/$e.out 2> $T/$e.err || fail "$e exit $?: $(head -c 300 $T/$e.err)"
  [ ! -s $T/$e.err ] || fail "$e wrote to stderr, which is not a TTY: $(head -c 300 $T/$e.err)"
  [ -s $T/$e.out ] || fail "$e printed no summary"
  jq -e --arg s ${SCHEMA[$e]} '.schema == $s and (.schema_version | type == "number" and . >= 1 and . == floor)' \
    $T/$e.json > /dev/null || fail "$e --json: schema $(jq -c '[.schema, .schema_version]' $T/$e.json)"
done
$Q merge $T/m.json $T/ppl.json > $T/m.out 2> $T/m.err || fail "merge exit $?"
[ ! -s $T/m.err ] || fail "merge wrote to stderr: $(cat $T/m.err)"
RUN[validate]="validate $R --text $T/text.txt --ctx 32 --max-tokens 192 --lengths 120 --depths 0,1 --haystack $T/text.txt --report $T/val"
$Q ${RUN[validate]} > $T/validate.out 2> $T/validate.err || fail "validate exit $?"
[ ! -s $T/validate.err ] || fail "validate wrote to stderr, which is not a TTY: $(head -c 300 $T/validate.err)"
[ -s $T/validate.out ] || fail "validate printed no summary"
jq -e '.schema == "qvet.validate" and .schema_version == 1' $T/val/report.json > /dev/null || fail "validate report.json schema"

command -v script > /dev/null || { echo "SKIP the TTY half: script(1) absent"; echo "cli_progress: non-TTY checks passed"; exit 0; }
for e in ppl compare niah trace validate; do
  script -qec "$Q ${RUN[$e]}" /dev/null > $T/$e.tty 2>&1 < /dev/null || fail "$e on a pty: exit $?"
  grep -q "ETA" $T/$e.tty && grep -q '\[#*\.*\]' $T/$e.tty || fail "$e drew no progress bar on a TTY: $(head -c 300 $T/$e.tty)"
done
echo "cli_progress: all checks passed"
