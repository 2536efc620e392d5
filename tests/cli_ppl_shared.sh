#!/usr/bin/env bash
# qvet ppl reproduces transformers' perplexity of the shared tiny model with the PPL64K protocol
# (shared/data/README.md: no BOS, the first 65,536 ids of eval.txt, 64 windows of 1024).
# Expected: 21.611, the FP32 transformers figure of shared/models/README.md ("Results"); we
# require the same value at the README's 3 decimals (so 21.61 at 4 significant digits).
# ~80 s on 2 busy cores.
set -u
QVET=${QVET:?path to qvet}
SH=${QV_SHARED_DIR:-}
if [ -z "$SH" ] || [ ! -f "$SH/models/qvet-tiny-llama/model.safetensors" ] || [ ! -f "$SH/data/eval.txt" ]; then
  echo "SKIP cli_ppl_shared: shared assets absent"
  exit 77
fi
command -v jq >/dev/null || { echo "SKIP cli_ppl_shared: jq absent"; exit 77; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
"$QVET" ppl --model "$SH/models/qvet-tiny-llama" --engine ref-fp32 --text "$SH/data/eval.txt" \
  --no-bos --ctx 1024 --max-tokens 65536 --threads 2 --json "$T/ppl.json" >"$T/out" 2>"$T/err"
rc=$?
cat "$T/out" "$T/err"
[ $rc = 0 ] || { echo "FAIL qvet ppl exited $rc"; exit 1; }
jget() { jq -c "$2" "$1"; }
ppl=$(jget "$T/ppl.json" .summary.ppl)
fails=0
[ "$(jget "$T/ppl.json" .summary.chunks)" = 64 ] && [ "$(jget "$T/ppl.json" .summary.scored_tokens)" = 65472 ] \
  && echo "ok   64 chunks of 1024, 65,472 scored tokens" || { echo "FAIL chunks/scored: $(cat "$T/out")"; fails=1; }
[ "$(printf '%.4g' "$ppl")" = 21.61 ] && echo "ok   ppl $ppl is 21.61 to 4 significant digits" \
  || { echo "FAIL ppl $ppl, want 21.61 (4 significant digits)"; fails=1; }
[ "$(printf '%.3f' "$ppl")" = 21.611 ] && echo "ok   ppl $ppl is the README's 21.611 to 3 decimals" \
  || { echo "FAIL ppl $ppl, want 21.611 (transformers, shared/models/README.md)"; fails=1; }
[ $fails = 0 ]
