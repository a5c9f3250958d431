#!/usr/bin/env bash
# Builds the pretraining corpus of the bundled model from Debian packages (no other download):
#   scripts/bundled-model/corpus.sh DIR
# writes DIR/debs/ (the packages), DIR/corpus/*.fa[.gz] (the sequence files) and
# DIR/corpus/SOURCES.tsv (package, version, file, sha256). Needs apt-get (any Debian or Ubuntu;
# no root: `apt-get download` only fetches) and dpkg-deb.
set -euo pipefail

dir=${1:?usage: corpus.sh DIR}
mkdir -p "$dir/debs" "$dir/corpus"
dir=$(cd "$dir" && pwd)

# package  path inside the package  corpus file name
sources=(
    "bowtie-examples usr/share/doc/bowtie/examples/genomes/NC_008253.fna.gz ecoli536.fna.gz"
    "abacas-examples usr/share/doc/abacas-examples/SS_SC84.dna.gz ssuis_sc84.fa.gz"
    "abacas-examples usr/share/doc/abacas-examples/454AllContigs.fna.gz ssuis_454contigs.fna.gz"
    "htslib-test usr/share/htslib-test/test/ce.fa celegans.fa"
    "plast-example usr/share/doc/plast-example/db/sapiens_1Mo.fa.gz human_scaffolds.fa.gz"
    "r-bioc-biostrings usr/lib/R/site-library/Biostrings/extdata/dm3_upstream2000.fa.gz dm3_upstream2000.fa.gz"
)

cd "$dir/debs"
packages=$(printf '%s\n' "${sources[@]}" | cut -d' ' -f1 | sort -u)
for package in $packages; do
    if ! ls "${package}"_*.deb >/dev/null 2>&1; then
        apt-get download "$package" >/dev/null \
            || { echo "cannot download the Debian package $package (apt-get update first?)" >&2; exit 1; }
    fi
    rm -rf "x-$package" && dpkg-deb -x "${package}"_*.deb "x-$package"
done

printf 'package\tversion\tfile\tsha256\n' > "$dir/corpus/SOURCES.tsv"
for entry in "${sources[@]}"; do
    read -r package path name <<<"$entry"
    version=$(dpkg-deb -f "${package}"_*.deb Version)
    src="x-$package/$path"
    [ -f "$src" ] || { echo "$package $version has no $path" >&2; exit 1; }
    if [ "$name" = dm3_upstream2000.fa.gz ]; then
        # 26,454 overlapping 2 kb upstream regions (53 Mb): every 10th keeps the fly from
        # outweighing the other genomes.
        name=dm3_upstream2000_every10th.fa
        zcat "$src" | awk '/^>/ { keep = (n++ % 10 == 0) } keep' > "$dir/corpus/$name"
    else
        cp "$src" "$dir/corpus/$name"
    fi
    printf '%s\t%s\t%s\t%s\n' "$package" "$version" "$path" "$(sha256sum "$src" | cut -d' ' -f1)" \
        >> "$dir/corpus/SOURCES.tsv"
done
echo "$dir/corpus"
