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
./build/qvet tokenize --model "$out/synthetic-tiny" --decode < "$out/ids.json"
echo "main job: OK (outputs in $out)"
