#!/usr/bin/env bash
# Installs the .deb into this machine, opens a FASTA file through the installed desktop entry
# under Xvfb, checks that the window appears with the file loaded (a screenshot, and the file
# in the settings the app saves on closing), then uninstalls and checks that every file the
# package installed is gone.
#
#   packaging/linux/check-deb.sh path/to/dnatune_<version>_<arch>.deb
#
# Needs root (apt-get), Xvfb, xdotool, ImageMagick's `import`, gio (libglib2.0-bin) and the
# shared data beside the repository (../shared or $DNATUNE_SHARED). Prints where the
# screenshot is.
set -euo pipefail
cd "$(dirname "$0")/../.."
deb=$(realpath "$1")
shared=${DNATUNE_SHARED:-../shared}
fasta=$(realpath "$shared/data/promoters_cnnprom/Ecoli_prom.fa.gz")

export DEBIAN_FRONTEND=noninteractive
if dpkg -s dnatune >/dev/null 2>&1; then
    echo "removing the dnatune package installed before this check"
    apt-get remove --purge -y -q dnatune >/dev/null
fi
echo "installing $deb"
apt-get install -y -q "$deb" >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null && apt-get install -y -q "$deb" >/dev/null; }
installed=$(dpkg -L dnatune)
out=$(mktemp -d /tmp/dnatune-deb.XXXXXX)
printf '%s\n' "$installed" >"$out/installed-files.txt"
echo "installed $(wc -l <"$out/installed-files.txt") paths; binary: $(command -v dnatune)"

# The MIME types are registered (dpkg's shared-mime-info trigger ran).
type=$(gio info --attributes=standard::content-type "$fasta" | sed -n 's/.*standard::content-type: //p')
echo "content type of $(basename "$fasta"): $type"
[ "$type" = application/x-fasta-compressed ] ||
    { echo "FAILED: .fa.gz is not known as application/x-fasta-compressed" >&2; exit 1; }

home="$out/home"
mkdir -p "$home" "$out/runtime"
chmod 700 "$out/runtime"
display=":$((80 + RANDOM % 9))"
Xvfb "$display" -screen 0 1280x800x24 -nolisten tcp >"$out/xvfb.log" 2>&1 &
xvfb_pid=$!
cleanup() {
    pkill -x dnatune 2>/dev/null || true
    kill "$xvfb_pid" 2>/dev/null || true
    # A failed check leaves nothing installed behind.
    if dpkg -s dnatune >/dev/null 2>&1; then
        apt-get remove --purge -y -q dnatune >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT
sleep 1

# Open the file as a file manager does: through the installed desktop entry.
echo "gio launch /usr/share/applications/dnatune.desktop $fasta"
env HOME="$home" DISPLAY="$display" XDG_RUNTIME_DIR="$out/runtime" \
    gio launch /usr/share/applications/dnatune.desktop "$fasta" >"$out/app.log" 2>&1
export DISPLAY=$display
window=$(timeout 60 xdotool search --sync --onlyvisible --name '^dnatune$' | head -1)
[ -n "$window" ] || { echo "FAILED: no dnatune window appeared" >&2; cat "$out/app.log" >&2; exit 1; }
xdotool windowfocus --sync "$window"
sleep 4
import -window "$window" "$out/opened.png"
echo "screenshot: $out/opened.png"

# Close with Ctrl+Q: the app saves its settings, which list the files it had loaded.
xdotool key --window "$window" ctrl+q
for _ in $(seq 1 40); do
    pgrep -x dnatune >/dev/null || break
    sleep 0.25
done
if pgrep -x dnatune >/dev/null; then
    echo "FAILED: the app did not close on Ctrl+Q" >&2
    exit 1
fi
settings="$home/.local/share/dnatune/app.ron"
if ! grep -q "$(basename "$fasta")" "$settings" 2>/dev/null; then
    echo "FAILED: the app did not have $(basename "$fasta") loaded (settings: $settings)" >&2
    exit 1
fi
echo "the window opened with $(basename "$fasta") loaded"

# The installed binary finds the bundled model and demo data under /usr/share/dnatune and
# fine-tunes offline (a few steps: the whole demo is `dnatune train --demo`).
echo "dnatune train --demo --max-steps 4 (installed binary, offline)"
env HOME="$home" HF_HUB_OFFLINE=1 dnatune train --demo --max-steps 4 --out "$out/demo-run" \
    >"$out/demo.out" 2>"$out/demo.err" ||
    { echo "FAILED: the demo did not run" >&2; cat "$out/demo.err" >&2; exit 1; }
grep -q "from /usr/share/dnatune/models/dnatune-mini" "$out/demo.err" ||
    { echo "FAILED: the demo did not use the installed model" >&2; cat "$out/demo.err" >&2; exit 1; }
tail -1 "$out/demo.out" | grep -Eq '^test MCC: -?[0-9.]+$' ||
    { echo "FAILED: the demo's last line is not 'test MCC: <value>'" >&2; cat "$out/demo.out" >&2; exit 1; }
echo "demo from the installed files: $(tail -1 "$out/demo.out")"

echo "removing the package"
apt-get remove --purge -y -q dnatune >/dev/null
left=0
while IFS= read -r path; do
    # Folders the package shares with others (/usr, /usr/share/icons/…) stay.
    if [ -e "$path" ] && [ ! -d "$path" ]; then
        echo "left behind: $path" >&2
        left=1
    fi
done <"$out/installed-files.txt"
[ -d /usr/share/dnatune ] && { echo "left behind: /usr/share/dnatune" >&2; left=1; }
[ "$left" = 0 ] || { echo "FAILED: uninstalling left files behind" >&2; exit 1; }
echo "package check passed: installed, opened $(basename "$fasta") from the desktop entry, ran the demo, removed cleanly"
