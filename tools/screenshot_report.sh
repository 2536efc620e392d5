#!/bin/sh
# Screenshots a validate report in headless chromium (Debian: apt-get install -y chromium), so a
# person can look at what a reader sees: tools/screenshot_report.sh REPORT_DIR [OUT.png]
set -e
dir=${1:?usage: $0 REPORT_DIR [OUT.png]}
out=${2:-$dir/report.png}
html=$(cd "$dir" && pwd)/report.html
[ -f "$html" ] || { echo "$html: no such file" >&2; exit 2; }
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
[ -n "$browser" ] || { echo "SKIP: no chromium on PATH" >&2; exit 77; }
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1200,2400 \
    --screenshot="$out" "file://$html" >/dev/null 2>&1
[ -s "$out" ] && echo "wrote $out"
