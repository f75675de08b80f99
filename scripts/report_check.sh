#!/usr/bin/env bash
# Render an engage HTML report headless with Chromium and save a screenshot to look at.
#
# Usage: scripts/report_check.sh REPORT.html [SCREENSHOT.png] [WIDTHxHEIGHT]
# Make a report first, e.g. (`make report-check` does both widths):
#   .venv/bin/engage score --out build/report.html --top 15
#   scripts/report_check.sh build/report.html build/report-desktop.png 1400x2600
#   scripts/report_check.sh build/report.html build/report-phone.png 390x3200
# Skips (exit 0, with a message) when Chromium is not installed
# (Debian: apt-get update && apt-get install -y chromium).
set -euo pipefail

report=${1:?usage: scripts/report_check.sh REPORT.html [SCREENSHOT.png] [WIDTHxHEIGHT]}
shot=${2:-${report%.*}.png}
size=${3:-1400x1800}

browser=""
for candidate in chromium chromium-browser google-chrome; do
    if command -v "$candidate" >/dev/null 2>&1; then
        browser=$candidate
        break
    fi
done
if [[ -z "$browser" ]]; then
    echo "report_check: Chromium not found, skipping the render (apt-get install -y chromium)" >&2
    exit 0
fi
if [[ ! -f "$report" ]]; then
    echo "report_check: $report: no such file" >&2
    exit 2
fi

profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
url="file://$(cd "$(dirname "$report")" && pwd)/$(basename "$report")"
mkdir -p "$(dirname "$shot")"
shot_abs="$(cd "$(dirname "$shot")" && pwd)/$(basename "$shot")"
rm -f "$shot_abs"
# --disable-* flags: no network, no first-run or background work, so the render is offline.
"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$profile" --hide-scrollbars --screenshot="$shot_abs" \
    --window-size="${size/x/,}" "$url" >/dev/null 2>&1 || true
if [[ ! -s "$shot_abs" ]]; then
    echo "report_check: Chromium produced no screenshot for $report" >&2
    exit 1
fi
echo "report_check: wrote $shot_abs"
