#!/usr/bin/env bash
# Is pretraining worth it? The demo (`dnatune train --demo`) on the bundled model, and on the
# same architecture with random weights (drawn as `pretrain --from-scratch` draws them, with
# its seed; one step at a learning rate of 1e-12), with the same budget, for several seeds:
#   scripts/bundled-model/compare-random-init.sh [SEED…]     (default: 1 2 3)
# Prints one line per run and the mean test MCC of each. Needs a release build.
set -euo pipefail
cd "$(dirname "$0")/../.."
seeds=("$@")
[ ${#seeds[@]} -gt 0 ] || seeds=(1 2 3)

cargo build --release --bin dnatune >&2
dnatune=${CARGO_TARGET_DIR:-target}/release/dnatune
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

scripts/bundled-model/template.sh "$work/template" >/dev/null
head -2 assets/demo/coding.fa > "$work/one.fa"
"$dnatune" pretrain --from-scratch --model "$work/template" "$work/one.fa" --out "$work/init" \
    --window 60 --max-steps 1 --lr 1e-12 --checkpoint-every 1 --seed 42 --device cpu >/dev/null 2>&1
random="$work/init/$(cat "$work/init/latest")"

printf 'model\tseed\ttest MCC\tseconds\n'
for model in dnatune/dnatune-mini "$random"; do
    name=pretrained
    [ "$model" = "$random" ] && name=random-init
    for seed in "${seeds[@]}"; do
        start=$(date +%s)
        mcc=$("$dnatune" train --demo --model "$model" --seed "$seed" --device cpu \
            --out "$work/run-$name-$seed" 2>/dev/null | tail -1 | sed 's/^test MCC: //')
        printf '%s\t%s\t%s\t%s\n' "$name" "$seed" "$mcc" "$(( $(date +%s) - start ))"
    done
done | tee "$work/table.tsv"
awk -F'\t' '{ sum[$1] += $3; n[$1]++ } END { for (m in sum) printf "mean test MCC, %s: %.4f (%d seeds)\n", m, sum[m] / n[m], n[m] }' \
    "$work/table.tsv"
