#!/usr/bin/env bash
# qvet logits and qvet ppl on the built-in synthetic model (no shared assets needed): output
# formats, --last, --ids vs --ids-file, BOS handling, JSON schema, the TTY-only progress bar, and
# exit codes / messages on bad input (CLI.md).
set -u
QVET=${QVET:?path to qvet}
command -v jq >/dev/null || { echo "SKIP cli_logits_ppl: jq absent"; exit 77; }
. "$(dirname "$0")/lib/cli_expect.sh" # $T, ok/bad/$fails, expect

# ---- logits ----
expect "logits --ids" 0 - -- logits --engine ref-fp32 --ids 5,17,300,2 --out "$T/a.json"
# rows: one line per row (the writer puts each row on its own line); 512 values each (tiny vocab)
rows=$(grep -c '^\[' "$T/a.json")
[ "$rows" = 4 ] && ok "all 4 positions by default" || bad "rows $rows, want 4"
vals=$(sed -n '2p' "$T/a.json" | tr ',' '\n' | grep -c .)
[ "$vals" = 512 ] && ok "a row holds vocab_size (512) values" || bad "row has $vals values, want 512"
head -c 22 "$T/a.json" | grep -qF '{"ids":[5,17,300,2],' && ok "ids echoed" || bad "ids not echoed: $(head -c 40 "$T/a.json")"
expect "logits --last 2" 0 - -- logits --engine ref-fp32 --ids 5,17,300,2 --last 2 --out "$T/b.json"
rows=$(grep -c '^\[' "$T/b.json")
[ "$rows" = 2 ] && ok "--last 2 writes 2 rows" || bad "--last 2 wrote $rows rows"
printf '[5, 17, 300, 2]' >"$T/ids.json"
expect "logits --ids-file (array)" 0 - -- logits --engine ref-fp32 --ids-file "$T/ids.json" --out "$T/c.json"
cmp -s "$T/a.json" "$T/c.json" && ok "--ids-file gives the same bytes as --ids" || bad "--ids-file output differs from --ids"
expect "logits --ids-file (a logits file)" 0 - -- logits --engine ref-fp32 --ids-file "$T/a.json" --out "$T/d.json"
cmp -s "$T/a.json" "$T/d.json" && ok "a logits file feeds back in" || bad "feeding a logits file back differs"
expect "id out of range" 2 "id 512 at index 1 outside the vocabulary [0, 512)" -- logits --engine ref-fp32 --ids 3,512 --out "$T/e.json"
expect "negative id (separate arg)" 2 "outside the vocabulary" -- logits --engine ref-fp32 --ids -1 --out "$T/e.json"
expect "empty ids" 2 "no token ids" -- logits --engine ref-fp32 --ids "" --out "$T/e.json"
printf '[]' >"$T/empty.json"
expect "empty ids file" 2 "$T/empty.json: no token ids" -- logits --engine ref-fp32 --ids-file "$T/empty.json" --out "$T/e.json"
seq -s, 1 2049 | sed 's/[0-9]*/7/g' >"$T/long.txt"
expect "longer than max_position_embeddings" 2 "2049 ids, longer than the model's max_position_embeddings 2048" -- logits --engine ref-fp32 --ids "$(cat "$T/long.txt")" --out "$T/e.json"
[ ! -e "$T/e.json" ] && ok "no output file after errors" || bad "an output file was left after errors"
expect "not an integer" 2 "is not an integer" -- logits --engine ref-fp32 --ids 1,x --out "$T/e.json"
printf '{"ids": [1, 2.5]}' >"$T/frac.json"
expect "fractional id in file" 2 "$T/frac.json: item 1 of the id array is not an integer" -- logits --engine ref-fp32 --ids-file "$T/frac.json" --out "$T/e.json"
expect "missing ids file" 2 "$T/nope.json" -- logits --engine ref-fp32 --ids-file "$T/nope.json" --out "$T/e.json"
expect "no --engine" 2 "--engine E is required" -- logits --ids 1 --out "$T/e.json"
expect "unknown engine" 2 "frob" -- logits --engine frob --ids 1 --out "$T/e.json"
expect "--ids and --ids-file" 2 "exactly one of" -- logits --engine ref-fp32 --ids 1 --ids-file "$T/ids.json" --out "$T/e.json"
expect "no --out" 2 "--out F.json is required" -- logits --engine ref-fp32 --ids 1
expect "--last 0" 2 "--last '0'" -- logits --engine ref-fp32 --ids 1 --last 0 --out "$T/e.json"
expect "unwritable --out" 2 "$T/no/dir/x.json" -- logits --engine ref-fp32 --ids 1 --out "$T/no/dir/x.json"
expect "logits --help" 0 - -- logits --help

# ---- ppl ----
cat >"$T/text.txt" <<'TXT'
The reference engine is slow and plain. It reads the weights, multiplies matrices in single
precision, and keeps a cache of keys and values for every token it has seen. The fast engine is
clever: it packs two weights into each byte and subtracts the zero point after the multiplication.
Clever code is where silent errors hide, so the two engines are compared on thousands of shapes.
Perplexity is the exponential of the mean negative log-likelihood. Every report is written to a
temporary file first and then renamed, so that a reader never sees half of a report.
TXT
ntok=$("$QVET" tokenize <"$T/text.txt" | tr ',' '\n' | grep -c .)
expect "ppl --ctx 64 --json" 0 - -- ppl --engine ref-fp32 --text "$T/text.txt" --ctx 64 --json "$T/p.json"
line=$(cat "$T/out")
echo "  $line"
chunks=$(( (ntok + 1) / 64 ))  # + 1: the tokenizer's BOS at the very start
echo "$line" | grep -Eq "^ppl [0-9.]+ \(95% CI [0-9.]+ - [0-9.]+\), $chunks chunks of 64, $((chunks * 63)) scored tokens, " \
  && ok "summary line: ppl, CI, $chunks chunks, scored tokens" || bad "summary line '$line' (want $chunks chunks)"
[ ! -s "$T/err" ] && ok "nothing on stderr when it is not a TTY" || bad "stderr not empty: $(head -c 200 "$T/err")"
jget() { jq -c "$2" "$1"; }
[ "$(jget "$T/p.json" .schema)" = '"qvet.ppl"' ] && [ "$(jget "$T/p.json" .schema_version)" = 2 ] && ok "json schema qvet.ppl version 2" \
  || bad "json schema '$(jget "$T/p.json" .schema)' version '$(jget "$T/p.json" .schema_version)'"
[ "$(jget "$T/p.json" .meta.text_tokens)" = $((ntok + 1)) ] && ok "BOS added once at the start (text_tokens = $((ntok + 1)))" \
  || bad "text_tokens $(jget "$T/p.json" .meta.text_tokens), want $((ntok + 1))"
[ "$(jget "$T/p.json" .summary.chunks)" = "$chunks" ] && ok "json chunks" || bad "json chunks $(jget "$T/p.json" .summary.chunks)"
printed=$(echo "$line" | awk '{print $2}')
[ "$(printf '%.4f' "$(jget "$T/p.json" .summary.ppl)")" = "$printed" ] && ok "json ppl = printed ppl" || bad "json ppl $(jget "$T/p.json" .summary.ppl) vs printed $printed"
expect "ppl --no-bos" 0 - -- ppl --engine ref-fp32 --text "$T/text.txt" --ctx 64 --no-bos --json "$T/q.json"
[ "$(jget "$T/q.json" .meta.text_tokens)" = "$ntok" ] && ok "--no-bos: no BOS" || bad "--no-bos text_tokens $(jget "$T/q.json" .meta.text_tokens), want $ntok"
[ "$(jget "$T/q.json" .meta.bos)" = false ] && ok "json bos false" || bad "json bos $(jget "$T/q.json" .meta.bos)"
expect "ppl --max-tokens 128" 0 - -- ppl --engine ref-fp32 --text "$T/text.txt" --ctx 64 --max-tokens 130 --json "$T/r.json"
[ "$(jget "$T/r.json" .summary.chunks)" = 2 ] && [ "$(jget "$T/r.json" .meta.tokens_used)" = 130 ] && ok "--max-tokens 130: 130 ids, 2 chunks" \
  || bad "--max-tokens: chunks $(jget "$T/r.json" .summary.chunks) tokens_used $(jget "$T/r.json" .meta.tokens_used)"
# the progress bar appears when stderr is a terminal (script(1) gives the command a pty)
if command -v script >/dev/null 2>&1; then
  script -qec "$QVET ppl --engine ref-fp32 --text $T/text.txt --ctx 64" /dev/null >"$T/tty" 2>&1 </dev/null
  grep -q "ETA" "$T/tty" && grep -q "chunks" "$T/tty" && ok "progress bar with ETA on a TTY" || bad "no progress bar on a TTY: $(head -c 300 "$T/tty")"
else
  echo "SKIP progress bar on a TTY: script(1) absent"
fi
: >"$T/empty.txt"
expect "empty text" 2 "$T/empty.txt: empty text" -- ppl --engine ref-fp32 --text "$T/empty.txt"
printf 'abc \xff def' >"$T/latin.txt"
expect "non-UTF-8 text" 2 "$T/latin.txt: not UTF-8 (invalid byte 0xff at offset 4)" -- ppl --engine ref-fp32 --text "$T/latin.txt"
printf 'abc \xe2\x82' >"$T/cut.txt"
expect "truncated UTF-8 sequence" 2 "$T/cut.txt: not UTF-8 (invalid byte 0xe2 at offset 4)" -- ppl --engine ref-fp32 --text "$T/cut.txt"
printf 'Short text.' >"$T/short.txt"
expect "shorter than one chunk" 2 "$T/short.txt:" -- ppl --engine ref-fp32 --text "$T/short.txt" --ctx 64
grep -qF "fewer than one chunk of --ctx 64" "$T/err" && ok "message says fewer than one chunk" || bad "message: $(cat "$T/err")"
expect "--ctx above the model maximum" 2 "--ctx 4096 exceeds the model's max_position_embeddings 2048" -- ppl --engine ref-fp32 --text "$T/text.txt" --ctx 4096
expect "--ctx 1" 2 "--ctx '1'" -- ppl --engine ref-fp32 --text "$T/text.txt" --ctx 1
expect "missing text file" 2 "$T/none.txt" -- ppl --engine ref-fp32 --text "$T/none.txt"
expect "no --text" 2 "--text FILE is required" -- ppl --engine ref-fp32
expect "unknown option" 2 "unknown option '--frob'" -- ppl --engine ref-fp32 --text "$T/text.txt" --frob
"$QVET" synth --out "$T/m" >/dev/null 2>&1 && rm -f "$T/m/tokenizer.json"
expect "model without tokenizer.json" 2 "no tokenizer.json" -- ppl --model "$T/m" --engine ref-fp32 --text "$T/text.txt" --ctx 64
expect "ppl --help" 0 - -- ppl --help
echo "cli_logits_ppl: $fails failure(s)"
[ $fails = 0 ]
