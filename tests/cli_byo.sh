#!/bin/bash
# Bring your own logits (docs/byo.md) on the built-in synthetic model:
#   - qvet's own engines (ref-fp32 vs ref-qoq) dumped by the hidden `compare --dump-logits` and
#     re-read by `compare --ref-logits/--cand-logits --ids` give the direct run's figures, bit
#     for bit (summary and every chunk's statistics);
#   - dump-ids writes the chunks compare scores (same count, ctx, ids hash);
#   - bad dumps: mismatched ids, chunk counts, ctx, NaN in a logit -> exit 2 naming file/chunk.
set -u
Q=${QVET:?}
command -v jq >/dev/null || { echo "SKIP cli_byo: jq absent"; exit 77; }
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
A="--ctx 48 --max-tokens 480"

$Q dump-ids $A --out $T/ids.safetensors > $T/out || fail "dump-ids exit $?"
grep -q "10 chunks of 48 tokens" $T/out || fail "dump-ids summary: $(cat $T/out)"
$Q compare --ref ref-fp32 --cand ref-qoq $A --json $T/direct.json --dump-logits $T/d > /dev/null || fail "direct compare exit $?"
[ "$(ls $T/d/ref | wc -l)" = 10 ] && [ "$(ls $T/d/cand | wc -l)" = 10 ] || fail "expected 10 chunk files per side"
$Q compare --ref-logits $T/d/ref --cand-logits $T/d/cand --ids $T/ids.safetensors --json $T/dump.json > $T/out || fail "dump compare exit $?"
jq -e '.summary.kld.mean.value > 0 and .summary.top1_agreement.value < 1' $T/direct.json >/dev/null || fail "trivial case"
cmp <(jq -S .summary $T/direct.json) <(jq -S .summary $T/dump.json) || fail "summary from dumps differs from the direct run"
cmp <(jq -S .chunks $T/direct.json) <(jq -S .chunks $T/dump.json) || fail "chunk statistics from dumps differ"

# bad input
$Q compare --ref-logits $T/d/ref 2> $T/err; [ $? = 2 ] || fail "one dump only: exit"
$Q compare --ref-logits $T/d/ref --cand-logits $T/d/cand --ref ref-fp32 2> $T/err; [ $? = 2 ] || fail "engine flag with dumps: exit"
$Q dump-ids $A --no-bos --out $T/ids_nobos.safetensors > /dev/null || fail "dump-ids --no-bos"
$Q compare --ref-logits $T/d/ref --cand-logits $T/d/cand --ids $T/ids_nobos.safetensors 2> $T/err; [ $? = 2 ] || fail "ids mismatch exit"
grep -q "chunk 0: ids differ at position 0" $T/err || fail "ids mismatch message: $(cat $T/err)"
$Q dump-ids --ctx 48 --max-tokens 960 --out $T/ids20.safetensors > /dev/null || fail "dump-ids 20"
$Q compare --ref-logits $T/d/ref --cand-logits $T/d/cand --ids $T/ids20.safetensors 2> $T/err; [ $? = 2 ] || fail "chunk count vs ids exit"
grep -q "chunk counts differ" $T/err || fail "chunk count message: $(cat $T/err)"
cp -r $T/d/cand $T/c9; rm $T/c9/chunk_000009.safetensors
$Q compare --ref-logits $T/d/ref --cand-logits $T/c9 2> $T/err; [ $? = 2 ] || fail "chunk count exit"
grep -q "c9 holds 9 chunks" $T/err || fail "chunk count message: $(cat $T/err)"
$Q compare --ref-logits $T/d/ref --cand-logits $T/d/ref/chunk_000000.safetensors 2> $T/err; [ $? = 2 ] || fail "1 vs 10 chunks exit"
# a NaN at chunk 3, position 5, vocab entry 7: data start = 8 + header length; 'ids' (48 I32) comes first
cp -r $T/d/cand $T/cn; F=$T/cn/chunk_000003.safetensors
N=$(od -An -tu8 -N8 $F | tr -d ' ')
V=$(sed -n 's/.*ctx 48, vocab \([0-9]*\)$/\1/p' $T/out); [ -n "$V" ] || fail "no vocab in: $(cat $T/out)"
printf '\x00\x00\xc0\x7f' | dd of=$F bs=1 seek=$((8 + N + 48 * 4 + (5 * V + 7) * 4)) conv=notrunc 2>/dev/null
$Q compare --ref-logits $T/d/ref --cand-logits $T/cn 2> $T/err; [ $? = 2 ] || fail "NaN exit"
grep -q "chunk_000003.safetensors: chunk 3 (file chunk 0), position 5, vocab entry 7: logit is NaN" $T/err || fail "NaN message: $(cat $T/err)"
$Q compare --ref-logits $T/nope --cand-logits $T/d/cand 2> $T/err; [ $? = 2 ] || fail "missing dump exit"
grep -q "nope: no such file" $T/err || fail "missing dump message: $(cat $T/err)"
$Q dump-ids --ctx 5000 --out $T/x.safetensors 2> $T/err; [ $? = 2 ] || fail "dump-ids ctx exit"
echo "cli_byo: ok"
