#!/bin/sh
# Fetches real GenBank files for the tests into tests/data/cache/ (git-ignored):
# ct.gbk.gz (Chlamydia trachomatis D/UW-3/CX complete genome, 1,042,519 bp, 895 CDS) and
# ame1.gbk (an Apis mellifera contig record that is cut short: no ORIGIN, no `//`), both from
# the Debian package r-cran-seqinr (seqinr, GPL-2+; see tests/data/README.md).
# Tests that need them print "skipped: ..." when they are absent.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cache="$here/cache"
mkdir -p "$cache"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
apt-get download r-cran-seqinr
dpkg-deb -x r-cran-seqinr_*.deb extracted
for file in ct.gbk.gz ame1.gbk; do
    cp "extracted/usr/lib/R/site-library/seqinr/sequences/$file" "$cache/$file"
done
ls -l "$cache"
