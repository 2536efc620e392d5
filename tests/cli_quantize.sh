#!/usr/bin/env bash
# qvet quantize: usage errors (exit 2 with the flag named), bad calibration input (exit 2 naming
# the file), and a small end-to-end run on the built-in synthetic model whose checkpoint
# `qvet info --quantized` accepts and whose metadata records the transforms.
set -u
QVET=${QVET:?path to qvet}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
ok() { echo "ok   $1"; }
bad() { echo "FAIL $1"; fails=$((fails + 1)); }
expect() { # NAME WANT_RC STDERR_SUBSTRING -- args
  local name=$1 rc=$2 err=$3; shift 4
  "$QVET" "$@" >"$T/out" 2>"$T/err" </dev/null
  local got=$?
  if [ "$got" != "$rc" ]; then bad "$name: exit $got, want $rc ($(head -c 300 "$T/err"))"; return; fi
  if [ "$err" != "-" ] && ! grep -qF -- "$err" "$T/err"; then bad "$name: stderr '$(head -c 300 "$T/err")' lacks '$err'"; return; fi
  ok "$name"
}
for i in $(seq 1 200); do echo "The quick brown fox $i jumps over the lazy dog number $((i * 7))."; done > "$T/calib.txt"
echo "tiny" > "$T/short.txt"
expect "missing --calib" 2 "--calib TEXT is required" -- quantize --out "$T/x.st"
expect "missing --out" 2 "--out CKPT is required" -- quantize --calib "$T/calib.txt"
expect "bad format" 2 "w4a8-g128" -- quantize --calib "$T/calib.txt" --out "$T/x.st" --format w3
expect "bad kv" 2 "--kv expects 4 or 16" -- quantize --calib "$T/calib.txt" --out "$T/x.st" --kv 8
expect "bad samples" 2 "--samples expects an integer" -- quantize --calib "$T/calib.txt" --out "$T/x.st" --samples 0
expect "unknown flag" 2 "unknown argument '--frobnicate'" -- quantize --calib "$T/calib.txt" --out "$T/x.st" --frobnicate
expect "calib missing" 2 "$T/none.txt" -- quantize --calib "$T/none.txt" --out "$T/x.st"
expect "calib too short" 2 "fewer than --seqlen" -- quantize --calib "$T/short.txt" --out "$T/x.st" --seqlen 64
expect "synthetic end to end" 0 - -- quantize --calib "$T/calib.txt" --out "$T/q.st" --samples 4 --seqlen 64 --threads 1
expect "checkpoint opens" 0 - -- info --quantized "$T/q.st"
grep -q '"smooth_attn":{"alpha":0.5' "$T/out" && ok "metadata records SmoothAttention alpha" || bad "metadata lacks smooth_attn ($(grep transforms "$T/out"))"
grep -q 'calibration samples *4 x 64' "$T/out" && ok "metadata records samples" || bad "metadata lacks samples"
grep -q '"gptq":{"percdamp":0.01,"block":128,"act_order":true,"hessian_rows":256' "$T/out" && ok "metadata records GPTQ and its parameters" || bad "metadata lacks gptq ($(grep transforms "$T/out"))"
expect "no-gptq end to end" 0 - -- quantize --calib "$T/calib.txt" --out "$T/n.st" --samples 4 --seqlen 64 --threads 1 --no-gptq
expect "no-gptq opens" 0 - -- info --quantized "$T/n.st"
grep -q '"gptq":false' "$T/out" && ok "--no-gptq recorded" || bad "--no-gptq not recorded"
expect "rtn end to end" 0 - -- quantize --calib "$T/calib.txt" --out "$T/r.st" --no-smooth-attn --no-rotate --no-smooth --no-clip --no-gptq --seqlen 64 --format w8a8 --kv 16
expect "rtn opens" 0 - -- info --quantized "$T/r.st"
grep -q 'method *rtn' "$T/out" && ok "all transforms off is rtn" || bad "method not rtn"
echo "cli_quantize: $fails failure(s)"
[ $fails = 0 ]
