#!/bin/bash
# Builds tools/quant/quant_ppl against build/ (configure and build qvet first) and runs the
# accuracy table of docs/quant.md: calibrations, PPL (PPL64K protocol: no BOS, ctx 1024, the first
# N ids of eval.txt) through ref-qoq, per-chunk NLLs, and paired comparisons (paired.py).
# Usage: tools/quant/quant_ppl.sh [N_TOKENS] [OUTDIR] [JOBS]
# One thread per job (OpenBLAS/OpenMP), JOBS (default 2) jobs at a time.
set -e
cd "$(dirname "$0")/../.."
N=${1:-65536}; OUT=${2:-/tmp/qvet-quant}; J=${3:-2}
mkdir -p "$OUT"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
cc -O2 -std=c11 -Iinclude tools/quant/quant_ppl.c -o "$OUT/quant_ppl" build/libqvet.a -lcjson -lpcre2-8 \
   -L/usr/lib/x86_64-linux-gnu/openblas-pthread -lopenblas -fopenmp -lm
M=/work/shared/models/qvet-tiny-llama; C=/work/shared/data/calib.txt; E=/work/shared/data/eval.txt
RTN="--no-smooth-attn --no-rotate --no-smooth --no-clip --no-gptq"
cal() { n=$1; shift; /usr/bin/time -f "$n: %e s wall, %U s user" ./build/qvet quantize --model $M --calib $C \
        --threads 1 --out "$OUT/$n.st" "$@" > "$OUT/cal-$n.log" 2>&1; tail -1 "$OUT/cal-$n.log"; }
cal rtn-g128 $RTN
cal rtn-chn $RTN --format w4a8-chn
cal rtn-w8a8 $RTN --format w8a8
cal qoq-g128
cal qoq-nogptq --no-gptq
cal qoq-nosa --no-smooth-attn
cal qoq-norot --no-rotate
cal qoq-nosmooth --no-smooth
cal qoq-noclip --no-clip
cal qoq-rotv --rotate-v
cal gptq-only --no-smooth-attn --no-rotate --no-smooth --no-clip
cal qoq-chn --format w4a8-chn
cal qoq-w8a8 --format w8a8
ppl() { "$OUT/quant_ppl" $M $E $N 1024 ref-qoq "$OUT/$2.st" $3 "$OUT/$1.nll" > "$OUT/$1.txt" 2>&1; echo "$1: $(cat "$OUT/$1.txt")"; }
{
  echo "rtn-g128 rtn-g128 -"; echo "rtn-g128-kv16 rtn-g128 kv16"; echo "rtn-chn rtn-chn -"; echo "rtn-w8a8 rtn-w8a8 -"
  echo "qoq-g128 qoq-g128 -"; echo "qoq-g128-kv16 qoq-g128 kv16"; echo "qoq-nogptq qoq-nogptq -"
  echo "qoq-nosa qoq-nosa -"; echo "qoq-norot qoq-norot -"; echo "qoq-nosmooth qoq-nosmooth -"
  echo "qoq-noclip qoq-noclip -"; echo "qoq-rotv qoq-rotv -"; echo "gptq-only gptq-only -"
  echo "qoq-chn qoq-chn -"; echo "qoq-w8a8 qoq-w8a8 -"
} | { while read -r a b c; do ppl "$a" "$b" "$c" & while [ "$(jobs -r | wc -l)" -ge "$J" ]; do sleep 1; done; done; wait; }
"$OUT/quant_ppl" $M $E $N 1024 ref-fp32 - - "$OUT/fp.nll"
P="python3 tools/quant/paired.py"
for r in qoq-g128 qoq-nogptq gptq-only; do echo "$r vs rtn-g128: $($P "$OUT/$r.nll" "$OUT/rtn-g128.nll")"; done
for r in qoq-nogptq qoq-nosa qoq-norot qoq-nosmooth qoq-noclip qoq-rotv; do echo "$r vs qoq-g128: $($P "$OUT/$r.nll" "$OUT/qoq-g128.nll")"; done
echo "qoq-chn vs rtn-chn: $($P "$OUT/qoq-chn.nll" "$OUT/rtn-chn.nll")"
echo "qoq-w8a8 vs rtn-w8a8: $($P "$OUT/qoq-w8a8.nll" "$OUT/rtn-w8a8.nll")"
