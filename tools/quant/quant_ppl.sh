#!/bin/bash
# Builds tools/quant/quant_ppl against build/ (configure and build qvet first) and runs the
# accuracy table of docs/quant.md. Usage: tools/quant/quant_ppl.sh [N_TOKENS] [OUTDIR]
set -e
cd "$(dirname "$0")/../.."
N=${1:-65536}; OUT=${2:-/tmp/qvet-quant}
mkdir -p "$OUT"
cc -O2 -std=c11 -Iinclude tools/quant/quant_ppl.c -o "$OUT/quant_ppl" build/libqvet.a -lcjson -lpcre2-8 \
   -L/usr/lib/x86_64-linux-gnu/openblas-pthread -lopenblas -fopenmp -lm
M=/work/shared/models/qvet-tiny-llama; C=/work/shared/data/calib.txt; E=/work/shared/data/eval.txt
Q="./build/qvet quantize --model $M --calib $C --threads 2"
run() { echo "== $1"; shift; /usr/bin/time -f "   %es wall" "$@"; }
run "quantize RTN"      $Q --out $OUT/rtn.st --no-smooth-attn --no-rotate --no-smooth --no-clip
run "quantize QoQ"      $Q --out $OUT/qoq.st
run "quantize no-sa"    $Q --out $OUT/nosa.st --no-smooth-attn
run "quantize no-rot"   $Q --out $OUT/norot.st --no-rotate
run "quantize no-clip"  $Q --out $OUT/noclip.st --no-clip
run "ppl FP (ref-fp32)" $OUT/quant_ppl $M $E $N 1024 ref-fp32
for c in rtn qoq nosa norot noclip; do run "ppl $c" $OUT/quant_ppl $M $E $N 1024 ref-qoq $OUT/$c.st; done
run "ppl rtn kv16" $OUT/quant_ppl $M $E $N 1024 ref-qoq $OUT/rtn.st kv16
run "ppl qoq kv16" $OUT/quant_ppl $M $E $N 1024 ref-qoq $OUT/qoq.st kv16
