#!/usr/bin/env bash
# --dtype fp16|bf16 (CLI.md "Common options": gpu-fp16's weight/activation type): accepted by the
# commands that take --engine; a usage error (exit 2, before any model is loaded) with any other
# engine or a value other than fp16/bf16; gpu-fp16 with bf16 runs on a GPU and answers "no GPU"
# without one, as without the option.
set -u
QVET=${QVET:?path to qvet}
. "$(dirname "$0")/lib/cli_expect.sh" # $T, ok/bad/$fails, expect

printf 'The quick brown fox jumps over the lazy dog. ' >"$T/text.txt"
for e in ref-fp32 ref-qoq gpu-qoq; do
  expect "logits --engine $e --dtype bf16" 2 "--dtype bf16 is an option of gpu-fp16 only, not of $e" -- \
    logits --engine "$e" --dtype bf16 --ids 1,2 --out "$T/x.json"
  expect "ppl --engine $e --dtype bf16" 2 "--dtype bf16 is an option of gpu-fp16 only" -- \
    ppl --engine "$e" --dtype bf16 --text "$T/text.txt"
done
[ ! -e "$T/x.json" ] && ok "no output after the usage errors" || bad "an output file was written"
expect "--dtype xx" 2 "--dtype is fp16 or bf16, not 'xx'" -- logits --engine gpu-fp16 --dtype xx --ids 1 --out "$T/x.json"
expect "ppl --dtype fp32" 2 "--dtype is fp16 or bf16, not 'fp32'" -- ppl --engine gpu-fp16 --dtype fp32 --text "$T/text.txt"
expect "--dtype without a value" 2 "--dtype needs a value" -- logits --engine gpu-fp16 --ids 1 --out "$T/x.json" --dtype
expect "longbench --dtype bf16" 2 "--dtype bf16 is an option of gpu-fp16 only" -- \
  longbench --synthetic "$T/text.txt" --dtype bf16
# fp16 is every engine's default: naming it changes nothing
expect "ref-fp32 --dtype fp16" 0 - -- logits --engine ref-fp32 --dtype fp16 --ids 5,17,300 --out "$T/a.json"
expect "ref-fp32 without --dtype" 0 - -- logits --engine ref-fp32 --ids 5,17,300 --out "$T/b.json"
cmp -s "$T/a.json" "$T/b.json" && ok "--dtype fp16 is the default" || bad "--dtype fp16 changed ref-fp32's logits"
# the default type leaves ppl's meta as before --dtype existed (old results still resume)
printf 'It was a bright cold day in April, and the clocks were striking thirteen. %.0s' $(seq 30) >"$T/long.txt"
if command -v jq >/dev/null; then
  "$QVET" ppl --engine ref-fp32 --dtype fp16 --text "$T/long.txt" --ctx 64 --max-tokens 200 --json "$T/r.json" >/dev/null 2>&1 \
    && [ "$(jq '.meta.engine_opts | has("dtype")' "$T/r.json")" = false ] && ok "fp16: no dtype key in ppl meta" \
    || bad "ppl --dtype fp16: run failed or meta has a dtype key"
fi
# gpu-fp16 bf16: runs with a GPU (logits differ from the FP16 run's), "no GPU" (exit 2) without
"$QVET" logits --engine gpu-fp16 --dtype bf16 --ids 5,17,300 --out "$T/g.json" >"$T/out" 2>"$T/err"
rc=$?
if [ $rc = 0 ]; then
  ok "gpu-fp16 --dtype bf16 runs"
  "$QVET" logits --engine gpu-fp16 --ids 5,17,300 --out "$T/h.json" 2>/dev/null && ! cmp -s "$T/g.json" "$T/h.json" \
    && ok "bf16 logits differ from fp16's" || bad "gpu-fp16 bf16 logits equal the fp16 run's (or fp16 failed)"
  if "$QVET" ppl --engine gpu-fp16 --dtype bf16 --text "$T/long.txt" --ctx 64 --json "$T/p.json" >/dev/null 2>"$T/err"; then
    if command -v jq >/dev/null; then
      [ "$(jq -r .meta.engine_opts.dtype "$T/p.json")" = bf16 ] && ok "ppl meta records dtype bf16" \
        || bad "ppl meta lacks engine_opts.dtype bf16"
    fi
  else
    bad "ppl --engine gpu-fp16 --dtype bf16 failed ($(head -c 300 "$T/err"))"
  fi
elif grep -qF "no GPU" "$T/err"; then
  ok "gpu-fp16 --dtype bf16 without a GPU: exit $rc, 'no GPU'"
else
  bad "gpu-fp16 --dtype bf16: exit $rc ($(head -c 300 "$T/err"))"
fi
for c in logits ppl; do
  "$QVET" $c --help >"$T/h" 2>&1 && grep -qF -- "--dtype fp16|bf16" "$T/h" && ok "$c --help shows --dtype" \
    || bad "$c --help lacks --dtype"
done
[ $fails = 0 ] && echo "cli_dtype: all passed" || echo "cli_dtype: $fails failed"
[ $fails = 0 ]
