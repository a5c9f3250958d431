#!/usr/bin/env bash
# Renders the application icon's PNG sizes from its source, assets/icons/dnatune.svg (drawn for
# this project), into assets/icons/dnatune-<size>.png. Needs rsvg-convert (Debian:
# librsvg2-bin). Run after changing the SVG and commit the PNGs with it.
set -euo pipefail
cd "$(dirname "$0")/../assets/icons"
for size in 16 24 32 48 64 128 256 512; do
    rsvg-convert --width "$size" --height "$size" dnatune.svg --output "dnatune-$size.png"
done
ls -l dnatune-*.png
