#!/usr/bin/env bash
# Browser smoke test (not part of `npm test`: it needs Chromium and takes a minute or two):
#   build the browser bundle, serve the repository on 127.0.0.1 (HTTP Range support), open
#   browser/index.html in headless Chromium with WebGPU (SwiftShader's Vulkan on a GPU-less box),
#   and wait for the page to POST its verdict. Exit 0 on PASS.
#
#   bash scripts/browser-smoke.sh            # needs /usr/bin/chromium (apt-get install -y chromium)
#   CHROMIUM=/path/to/chrome TIMEOUT=600 bash scripts/browser-smoke.sh
#   SMOKE_EXTRA_FLAGS=--no-range …           # passed to serve.ts: exercises the whole-file fallback
set -euo pipefail
cd "$(dirname "$0")/.."

CHROMIUM=${CHROMIUM:-chromium}
TIMEOUT=${TIMEOUT:-600}
work=$(mktemp -d /tmp/convllava-smoke.XXXXXX)
server_pid=""
browser_pid=""
cleanup() {
  if [ -n "$browser_pid" ]; then kill "$browser_pid" 2>/dev/null || true; wait "$browser_pid" 2>/dev/null || true; fi
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work/profile" 2>/dev/null || true
}
trap cleanup EXIT

npx tsx scripts/build-browser.ts

: >"$work/server.log"
npx tsx scripts/serve.ts --root . ${SMOKE_EXTRA_FLAGS:-} >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do grep -q '^LISTENING ' "$work/server.log" && break; sleep 0.2; done
base=$(sed -n 's/^LISTENING //p' "$work/server.log")
[ -n "$base" ] || { echo "server did not start:"; cat "$work/server.log"; exit 1; }
echo "serving $(pwd) at $base"

# WebGPU in headless Chromium without a GPU: Dawn on SwiftShader's Vulkan. The network flags keep
# Chromium from calling out (this box has no network); the profile is a fresh temporary one.
flags=(
  --headless=new --no-sandbox --disable-gpu-sandbox
  --enable-unsafe-webgpu --enable-features=Vulkan --use-angle=swiftshader --use-vulkan=swiftshader --ignore-gpu-blocklist
  --disable-background-networking --disable-component-update --disable-sync --no-first-run --disable-quic
  --user-data-dir="$work/profile"
)
echo "$CHROMIUM ${flags[*]} ${base}browser/index.html"
"$CHROMIUM" "${flags[@]}" "${base}browser/index.html" >"$work/chromium.log" 2>&1 &
browser_pid=$!

start=$SECONDS
until grep -q '^REPORT ' "$work/server.log"; do
  if ! kill -0 "$browser_pid" 2>/dev/null; then echo "Chromium exited early:"; tail -20 "$work/chromium.log"; exit 1; fi
  if (( SECONDS - start > TIMEOUT )); then echo "no report after ${TIMEOUT}s"; tail -20 "$work/chromium.log"; exit 1; fi
  sleep 1
done
sleep 0.5 # the rest of the report's lines
sed -n '/^REPORT /,$p' "$work/server.log" | sed 's/^REPORT //'
echo "(${SECONDS}s in all; logs in $work)"
grep -qx 'PASS' "$work/server.log"
