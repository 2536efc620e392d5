#!/usr/bin/env bash
# The README's first command: install dependencies, build, and run the main job on the built-in
# synthetic model. The main job grows as commands land (see README "Status").
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
./build/qvet --version
./build/qvet --help
