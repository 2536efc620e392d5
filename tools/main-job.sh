#!/usr/bin/env bash
# The README's first command: install dependencies, build, and run the main job on the built-in
# synthetic model. The main job grows as commands land (README "Status").
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
out=build/main-job
rm -rf "$out" && mkdir -p "$out"
./build/qvet synth --out "$out/synthetic-tiny"
./build/qvet info --model "$out/synthetic-tiny" --json "$out/info.json"
./build/qvet tokenize --model "$out/synthetic-tiny" --text "The gate exits with zero when every case passes." > "$out/ids.json"
./build/qvet tokenize --model "$out/synthetic-tiny" --decode < "$out/ids.json" && echo
# perplexity of the synthetic model on a small text: the start of the shared eval set when it
# is there, else a few of qvet's own sentences (a fresh machine has no ../shared)
shared=${QV_SHARED_DIR:-../shared}
if [ -f "$shared/data/eval.txt" ]; then
  ./build/qvet ppl --model "$out/synthetic-tiny" --engine ref-fp32 --text "$shared/data/eval.txt" \
    --max-tokens 4096 --ctx 512 --json "$out/ppl.json"
else
  cat > "$out/text.txt" <<'TXT'
The reference engine is slow and plain. It reads the weights, multiplies matrices in single
precision, and keeps a cache of keys and values for every token it has seen. The fast engine is
clever: it packs two weights into each byte, reorders them so that each thread loads sixteen bytes
at once, and subtracts the zero point after the multiplication. Clever code is where silent errors
hide, so the two engines are compared on thousands of shapes.

Perplexity is the exponential of the mean negative log-likelihood. The KL divergence between two
distributions measures how much the quantized model's predictions drift from those of the
reference; the top-1 agreement counts how often both pick the same next token.

Every report is written to a temporary file first and then renamed, so that a reader never sees
half of a report. Every error names the file, the tensor and the shape that were wrong. The gate
exits with zero when every case passes, with one when a check fails, and with two when the input
itself is broken.
TXT
  ./build/qvet ppl --model "$out/synthetic-tiny" --engine ref-fp32 --text "$out/text.txt" --ctx 64 \
    --json "$out/ppl.json"
fi
# the CI gate, last: kernel matrix (CPU emulation; GPU cases skipped visibly without a device),
# corpus replay, golden check, SmoothAttention and model-level checks (docs/gate.md)
./build/qvet gate --json "$out/gate.json" --junit "$out/gate.xml"
echo "main job: OK (outputs in $out)"
