#!/usr/bin/env bash
# qvet tokenize: output format, --bos, --decode, stdin, and exit codes / messages on bad input.
# Expected ids are read from the fixtures written by tools/gen_tokenizer_fixtures.py (HF tokenizers).
set -u
QVET=${QVET:?path to qvet}
FX="${QV_SOURCE_DIR:?}/tests/fixtures/tokenizer"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
ok() { echo "ok   $1"; }
bad() { echo "FAIL $1"; fails=$((fails + 1)); }

# expect NAME WANT_RC WANT_STDOUT_OR_- STDERR_SUBSTRING_OR_- -- qvet args...
expect() {
  local name=$1 rc=$2 out=$3 err=$4; shift 5
  "$QVET" "$@" >"$T/out" 2>"$T/err" </dev/null
  local got=$?
  if [ "$got" != "$rc" ]; then bad "$name: exit $got, want $rc ($(head -c 300 "$T/err"))"; return; fi
  if [ "$out" != "-" ] && [ "$(cat "$T/out")" != "$out" ]; then bad "$name: stdout '$(head -c 200 "$T/out")', want '$out'"; return; fi
  if [ "$err" != "-" ] && ! grep -qF -- "$err" "$T/err"; then bad "$name: stderr '$(head -c 300 "$T/err")' lacks '$err'"; return; fi
  ok "$name"
}

# ids of a case in a fixture file, as qvet prints them: [1,2,3]
fixture_ids() {
  grep -o "\"name\":\"$2\",\"text\":\"[^\"]*\",\"ids\":\[[0-9,]*\]" "$FX/$1" | head -1 | sed 's/.*"ids"://'
}

G="$FX/gpt2_bytelevel.tokenizer.json"
S="$FX/sp_llama2.tokenizer.json"
HELLO=$(fixture_ids gpt2_bytelevel.json hello)
[ -n "$HELLO" ] || { echo "FAIL cannot read the hello case from the gpt2 fixture"; exit 1; }
expect "encode --text matches HF" 0 "$HELLO" - -- tokenize --tokenizer "$G" --text "Hello world"
printf 'Hello world' | "$QVET" tokenize --tokenizer "$G" >"$T/stdin_out" 2>&1
[ "$(cat "$T/stdin_out")" = "$HELLO" ] && ok "encode from stdin" || bad "encode from stdin: $(cat "$T/stdin_out")"
expect "empty text gives []" 0 "[]" - -- tokenize --tokenizer "$G" --text ""
SPHELLO=$(fixture_ids sp_llama2.json hello)
expect "--bos prepends the template's BOS (1)" 0 "[1,${SPHELLO#[}" - -- tokenize --tokenizer "$S" --text "Hello world" --bos
expect "no BOS without --bos" 0 "$SPHELLO" - -- tokenize --tokenizer "$S" --text "Hello world"
expect "--decode inverts encode" 0 "Hello world" - -- tokenize --tokenizer "$G" --decode --text "$HELLO"
printf '%s' "$SPHELLO" | "$QVET" tokenize --tokenizer "$S" --decode >"$T/d" 2>&1
[ "$(cat "$T/d")" = "Hello world" ] && ok "--decode from stdin" || bad "--decode from stdin: $(cat "$T/d")"
expect "--decode id out of range" 2 - "id 999999 at position 1" -- tokenize --tokenizer "$G" --decode --text "[1,999999]"
expect "--decode negative id" 2 - "id -3" -- tokenize --tokenizer "$G" --decode --text "[-3]"
expect "--decode not an array" 2 - "JSON array" -- tokenize --tokenizer "$G" --decode --text "1,2"
expect "--decode non-integer" 2 - "not an integer" -- tokenize --tokenizer "$G" --decode --text "[1.5]"
printf 'bad \xff utf8' | "$QVET" tokenize --tokenizer "$G" >"$T/out" 2>"$T/err"
rc=$?; [ $rc = 2 ] && grep -q "not valid UTF-8" "$T/err" && ok "invalid UTF-8 on stdin: exit 2" || bad "invalid UTF-8: exit $rc $(cat "$T/err")"
expect "missing model dir names the file" 2 - "/nonexistent-qvet/tokenizer.json" -- tokenize --model /nonexistent-qvet --text x
# no --model: the built-in synthetic model's tokenizer; decode(encode(s)) == s
ids=$("$QVET" tokenize --text "the quantized model, 12345!" 2>"$T/err"); rc=$?
back=$("$QVET" tokenize --decode --text "$ids" 2>>"$T/err")
[ $rc = 0 ] && [ "$back" = "the quantized model, 12345!" ] && ok "no model: synthetic tokenizer round trip ($ids)" \
  || bad "no model: synthetic tokenizer: exit $rc ids '$ids' back '$back' $(cat "$T/err")"
expect "unknown option" 2 - "unknown option '--frobnicate'" -- tokenize --tokenizer "$G" --frobnicate
expect "--model and --tokenizer together" 2 - "not both" -- tokenize --model /x --tokenizer "$G" --text x
expect "--text without value" 2 - "needs a value" -- tokenize --tokenizer "$G" --text
expect "--help" 0 - - -- tokenize --help
sed 's/"pre_tokenizer": *{[^}]*}/"pre_tokenizer": {"type": "Whitespace"}/' "$G" >"$T/ws.json"
expect "unsupported pre_tokenizer is named" 2 - "pre_tokenizer 'Whitespace' is not supported" -- tokenize --tokenizer "$T/ws.json" --text x
head -c 1000 "$G" >"$T/trunc.json"
expect "truncated tokenizer.json" 2 - "$T/trunc.json: not valid JSON" -- tokenize --tokenizer "$T/trunc.json" --text x

SH="${QV_SHARED_DIR:-}/models/qvet-tiny-llama"
if [ -f "$SH/tokenizer.json" ]; then
  W=$(fixture_ids qvet_tiny_llama.json contractions)
  expect "shared model --model DIR matches HF" 0 "$W" - -- tokenize --model "$SH" --text "It's, don't, we're, I've, I'm, you'll, he'd, y'all"
  expect "shared model --bos puts <|begin_of_text|> (0) first" 0 "[0,${W#[}" - -- tokenize --model "$SH" --bos --text "It's, don't, we're, I've, I'm, you'll, he'd, y'all"
else
  echo "SKIP shared-model cases: shared assets absent"
fi
echo "cli_tokenize: $fails failure(s)"
[ $fails = 0 ]
