#!/usr/bin/env bash
# Installs a Vulkan driver Dawn accepts on a headless Debian/Ubuntu box: Mesa's lavapipe (software
# Vulkan). Debian 12's stock Mesa 22.3 gives Dawn no adapter (it lacks
# shaderSampledImageArrayDynamicIndexing); Mesa ≥ 23 works, so on bookworm it comes from backports.
#
#   npm run setup            # asks before installing (needs root)
#   CONVLLAVA_SETUP=yes npm run setup   # no question (CI)
#   CONVLLAVA_SETUP=no …     # opt out: print what would be done and exit
set -euo pipefail

if node -e "import('webgpu').then(async ({create, globals}) => { Object.assign(globalThis, globals); const a = await create([]).requestAdapter(); process.exit(a ? 0 : 1); })" 2>/dev/null; then
  echo "setup: a WebGPU adapter is already available; nothing to do."
  exit 0
fi

echo "setup: Dawn finds no WebGPU adapter. This installs Mesa's software Vulkan driver (lavapipe)."
if [ "${CONVLLAVA_SETUP:-ask}" = "no" ]; then
  echo "setup: CONVLLAVA_SETUP=no — skipping. Install mesa-vulkan-drivers (Mesa >= 23) yourself."
  exit 1
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "setup: needs root and apt-get. Install Mesa >= 23 'mesa-vulkan-drivers' with your package manager." >&2
  exit 1
fi
if [ "${CONVLLAVA_SETUP:-ask}" != "yes" ]; then
  if [ ! -t 0 ]; then
    echo "setup: not a terminal; set CONVLLAVA_SETUP=yes to install without asking." >&2
    exit 1
  fi
  read -r -p "Install mesa-vulkan-drivers now? [y/N] " answer
  case "$answer" in y|Y|yes) ;; *) echo "setup: cancelled."; exit 1 ;; esac
fi

. /etc/os-release
export DEBIAN_FRONTEND=noninteractive
if [ "${VERSION_CODENAME:-}" = "bookworm" ]; then
  echo "deb http://deb.debian.org/debian bookworm-backports main" > /etc/apt/sources.list.d/convllava-backports.list
  apt-get update -qq
  apt-get install -y -qq -t bookworm-backports mesa-vulkan-drivers
else
  apt-get update -qq
  apt-get install -y -qq mesa-vulkan-drivers
fi
echo "setup: done."
