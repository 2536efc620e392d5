#!/usr/bin/env bash
# Installs qvet's build dependencies from Debian (Check, OpenBLAS, cJSON, PCRE2, CMake, and jq,
# which the CLI tests read JSON with) when they are missing, then configures and builds into
# build/. The CUDA toolkit is used when nvcc is on PATH (or in /usr/local/cuda/bin). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
pkgs=(build-essential cmake pkg-config check libsubunit-dev libopenblas-dev libcjson-dev libpcre2-dev jq)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v nvcc >/dev/null 2>&1 || { [ -x /usr/local/cuda/bin/nvcc ] && export PATH="/usr/local/cuda/bin:$PATH"; } || true
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"
