#!/usr/bin/env bash
# Builds the Debian package of dnatune from a release build, offline, with dpkg-deb:
#
#   packaging/linux/build-deb.sh            → dist/dnatune_<version>_<arch>.deb
#
# Honours CARGO_TARGET_DIR and DNATUNE_DEB_OUT. Needs cargo, dpkg-deb and dpkg-shlibdeps (Debian: dpkg-dev).
#
# What goes where:
#   /usr/bin/dnatune                                   the release binary (symbols stripped)
#   /usr/share/applications/dnatune.desktop            launcher: `dnatune open %F`
#   /usr/share/mime/packages/dnatune.xml               FASTA/FASTQ (+ .gz) MIME types
#   /usr/share/icons/hicolor/<n>x<n>/apps/dnatune.png  icon, 16…512 px, and scalable/…svg
#   /usr/share/dnatune/                                bundled files the binary looks up:
#                                                      icons/, models/dnatune-mini/, demo/
#   /usr/share/doc/dnatune/                            copyright, README
# The MIME, desktop and icon caches are refreshed by dpkg's triggers (shared-mime-info,
# desktop-file-utils, hicolor-icon-theme), so the package needs no maintainer scripts.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
target=${CARGO_TARGET_DIR:-$repo/target}
out=${DNATUNE_DEB_OUT:-$repo/dist}

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
arch=$(dpkg --print-architecture)
# DNATUNE_DEB_PROFILE=dev packages the unoptimised test build instead (same code and files; CI
# uses it to check the package without a half-hour release build on 2 cores).
profile=${DNATUNE_DEB_PROFILE:-release}
case "$profile" in
    release) cargo_profile=(--release); profile_dir=release ;;
    dev) cargo_profile=(); profile_dir=debug ;;
    *) echo "DNATUNE_DEB_PROFILE must be release or dev, not $profile" >&2; exit 2 ;;
esac
echo "building dnatune $version ($profile)" >&2
cargo build "${cargo_profile[@]}" --locked --bin dnatune >&2

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root="$work/dnatune_${version}_${arch}"

install -Dm755 "$target/$profile_dir/dnatune" "$root/usr/bin/dnatune"
strip --strip-unneeded "$root/usr/bin/dnatune"
install -Dm644 packaging/linux/dnatune.desktop "$root/usr/share/applications/dnatune.desktop"
install -Dm644 packaging/linux/dnatune-mime.xml "$root/usr/share/mime/packages/dnatune.xml"
for png in assets/icons/dnatune-*.png; do
    size=$(basename "$png" .png)
    size=${size#dnatune-}
    install -Dm644 "$png" "$root/usr/share/icons/hicolor/${size}x${size}/apps/dnatune.png"
done
install -Dm644 assets/icons/dnatune.svg "$root/usr/share/icons/hicolor/scalable/apps/dnatune.svg"
# Bundled files (found by the binary under /usr/share/dnatune, see src/assets.rs).
install -Dm644 assets/icons/dnatune.svg "$root/usr/share/dnatune/icons/dnatune.svg"
# The bundled model and the demo data set (src/bundled.rs).
for file in assets/models/dnatune-mini/* assets/demo/*; do
    install -Dm644 "$file" "$root/usr/share/dnatune/${file#assets/}"
done
install -Dm644 packaging/linux/copyright "$root/usr/share/doc/dnatune/copyright"
gzip -9n <README.md >"$work/README.md.gz"
install -Dm644 "$work/README.md.gz" "$root/usr/share/doc/dnatune/README.md.gz"

# Libraries the binary links against, as Debian packages (dpkg-shlibdeps reads its ELF
# header); the ones it opens at run time (windowing, input, fonts, D-Bus, Vulkan, OpenGL)
# are invisible there and listed by hand.
mkdir -p "$work/shlibs/debian"
printf 'Source: dnatune\n\nPackage: dnatune\nArchitecture: any\n' >"$work/shlibs/debian/control"
linked=$(cd "$work/shlibs" && dpkg-shlibdeps -O "$root/usr/bin/dnatune" 2>/dev/null |
    sed -n 's/^shlibs:Depends=//p')
runtime="libx11-6, libx11-xcb1, libxcursor1, libxrandr2, libxi6, libxkbcommon0, libxkbcommon-x11-0, \
libwayland-client0, libwayland-cursor0, libwayland-egl1, libfontconfig1, libdbus-1-3, libvulkan1, \
libgl1, libegl1"
installed_kb=$(du -sk --exclude=DEBIAN "$root" | cut -f1)

mkdir -p "$root/DEBIAN"
cat >"$root/DEBIAN/control" <<CONTROL
Package: dnatune
Version: $version
Architecture: $arch
Maintainer: dnatune developers <maintainers@dnatune.invalid>
Installed-Size: $installed_kb
Depends: ${linked:+$linked, }$runtime
Recommends: mesa-vulkan-drivers, libgl1-mesa-dri, libegl-mesa0, xdg-desktop-portal-gtk | zenity
Section: science
Priority: optional
Description: fine-tune DNA language models on your own sequences
 dnatune is a desktop application (and command line) that fine-tunes a
 pretrained DNA language model (DNABERT, DNABERT-2, Nucleotide Transformer,
 GENA-LM) with LoRA on FASTA files, without Python: leakage-free splits,
 live loss/F1/MCC plots, honest metrics, adapters exported in Hugging Face
 PEFT format, and prediction on new sequences.
CONTROL

mkdir -p "$out"
deb="$out/dnatune_${version}_${arch}.deb"
dpkg-deb --build --root-owner-group -Zxz "$root" "$deb" >&2
echo "$deb"
