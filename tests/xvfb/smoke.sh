#!/usr/bin/env bash
# Real-window smoke test: opens `dnatune open --model FIXTURE A.fa.gz B.fa.gz` on a virtual X
# display (Xvfb), names both classes by clicking and typing, starts a short run with a click,
# waits until the run is under way, takes screenshots and closes the app.
#
#   tests/xvfb/smoke.sh [path/to/dnatune]     (default: $CARGO_TARGET_DIR or target, debug build)
#
# Needs Xvfb, xdotool and ImageMagick's `import` (Debian: xvfb xdotool imagemagick) and the
# shared data beside the repository (../shared or $DNATUNE_SHARED). Prints where the
# screenshots are. Exits 0 with a message when a tool or the shared data is missing.
set -euo pipefail
cd "$(dirname "$0")/../.."

bin=${1:-${CARGO_TARGET_DIR:-target}/debug/dnatune}
shared=${DNATUNE_SHARED:-../shared}
for tool in Xvfb xdotool import; do
    if ! command -v "$tool" >/dev/null; then
        echo "skipped: $tool is not installed (Debian: apt-get install xvfb xdotool imagemagick)"
        exit 0
    fi
done
if [ ! -d "$shared/fixtures" ]; then
    echo "skipped: the shared data folder is missing ($shared)"
    exit 0
fi
[ -x "$bin" ] || { echo "no dnatune binary at $bin; run cargo build first" >&2; exit 1; }

out=$(mktemp -d /tmp/dnatune-smoke.XXXXXX)
home="$out/home"
mkdir -p "$home" "$out/runtime"
chmod 700 "$out/runtime"
display=":$((90 + RANDOM % 9))"
Xvfb "$display" -screen 0 1280x800x24 -nolisten tcp >"$out/xvfb.log" 2>&1 &
xvfb_pid=$!
app_pid=
cleanup() {
    [ -n "$app_pid" ] && kill "$app_pid" 2>/dev/null || true
    kill "$xvfb_pid" 2>/dev/null || true
}
trap cleanup EXIT
export DISPLAY=$display XDG_RUNTIME_DIR="$out/runtime"
sleep 1

data="$shared/data/promoters_cnnprom"
HOME="$home" "$bin" open --model "$shared/fixtures/dnabert1/model" \
    "$data/Bacillus_prom.fa.gz" "$data/Bacillus_non_prom.fa.gz" >"$out/app.log" 2>&1 &
app_pid=$!

window=$(timeout 60 xdotool search --sync --onlyvisible --name '^dnatune$' | head -1)
[ -n "$window" ] || { echo "FAILED: no dnatune window appeared" >&2; cat "$out/app.log" >&2; exit 1; }
# No window manager: focus explicitly, or typed keys go nowhere.
xdotool windowfocus --sync "$window"
sleep 3

# Where to click, in window pixels, measured on a screenshot of the window at its opening size
# (1100×780) and scale 1; the window opens at the screen's top-left corner (no window manager).
CLASS1_X=650 CLASS1_Y=182   # "Labels" field of the first file row
CLASS2_X=650 CLASS2_Y=205   # "Labels" field of the second file row
TRAIN_TAB_X=272 TRAIN_TAB_Y=12
START_X=54 START_Y=68
STOP_X=129 STOP_Y=68

click() { xdotool mousemove --window "$window" "$1" "$2" click 1; sleep 0.5; }
type_class() {
    click "$1" "$2"
    xdotool key --window "$window" ctrl+a
    xdotool type --window "$window" --delay 30 "$3"
    sleep 0.5
}

# Step 1: the two file rows' class fields.
type_class "$CLASS1_X" "$CLASS1_Y" promoter
type_class "$CLASS2_X" "$CLASS2_Y" background
import -window "$window" "$out/1-data.png"

# Step 3: start training.
click "$TRAIN_TAB_X" "$TRAIN_TAB_Y"
click "$START_X" "$START_Y"

# The run folder appears as soon as the run reads its data; then wait for a few steps.
runs="$home/.local/share/dnatune/runs"
for _ in $(seq 1 120); do
    [ -f "$runs/run-001/manifest.json" ] && break
    sleep 0.5
done
if [ ! -f "$runs/run-001/manifest.json" ]; then
    import -window "$window" "$out/failed.png"
    echo "FAILED: the run did not start (screenshot: $out/failed.png)" >&2
    exit 1
fi
sleep 8
import -window "$window" "$out/2-training.png"
classes=$(grep -o '"classes": *\[[^]]*\]' "$runs/run-001/manifest.json" | tr -d '\n ')
echo "run started with $classes"
case "$classes" in
    *promoter*background*|*background*promoter*) ;;
    *) echo "FAILED: the classes typed in the window are not the run's classes" >&2; exit 1 ;;
esac

# Stop the run: it is evaluated once more and its results are written.
click "$STOP_X" "$STOP_Y"
for _ in $(seq 1 120); do
    [ -f "$runs/run-001/test_predictions.csv" ] && break
    sleep 0.5
done
sleep 2 # the window shows the results once the run's last event arrives
import -window "$window" "$out/3-stopped.png"
if [ ! -f "$runs/run-001/test_predictions.csv" ]; then
    echo "FAILED: the stopped run wrote no results (screenshot: $out/3-stopped.png)" >&2
    exit 1
fi

# Close the window from the keyboard (Ctrl+Q); the app saves its settings and exits cleanly.
xdotool key --window "$window" ctrl+q
status=
for _ in $(seq 1 40); do
    if ! kill -0 "$app_pid" 2>/dev/null; then
        wait "$app_pid" && status=0 || status=$?
        break
    fi
    sleep 0.25
done
if [ "$status" != 0 ]; then
    echo "FAILED: the app did not exit cleanly on Ctrl+Q (status: ${status:-still running})" >&2
    cat "$out/app.log" >&2
    exit 1
fi
app_pid=
echo "smoke test passed; screenshots: $out/1-data.png $out/2-training.png $out/3-stopped.png"
