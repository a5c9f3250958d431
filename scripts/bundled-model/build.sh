#!/usr/bin/env bash
# Reproduces the bundled model, dnatune mini (assets/models/dnatune-mini/), from scratch:
#   scripts/bundled-model/build.sh [WORKDIR]      (default: target/bundled-model)
# 1. the corpus from Debian packages (corpus.sh), 2. the model definition (template.sh),
# 3. `dnatune pretrain --from-scratch` with the recipe below (a release build; about 40 min on
# 2 CPU cores), 4. the final checkpoint's model files into assets/models/dnatune-mini/, with
# the run's pretrain.json and history.jsonl beside them, 5. when a Python with torch and
# transformers is given as $PYTHON, the logits check against transformers.EsmForMaskedLM.
# Resumes an interrupted pretraining run in WORKDIR from its newest checkpoint. For a dry run:
# STEPS=2 MODEL_OUT=/tmp/mini scripts/bundled-model/build.sh /tmp/mini-work
set -euo pipefail
cd "$(dirname "$0")/../.."

work=${1:-target/bundled-model}
mkdir -p "$work"
work=$(cd "$work" && pwd)
model=${MODEL_OUT:-assets/models/dnatune-mini}

# The recipe (README "The bundled model").
steps=${STEPS:-1500}
recipe=(--window 1000 --batch-size 16 --lr 2e-3 --warmup-ratio 0.05 --schedule linear
        --weight-decay 0.01 --mask-probability 0.15 --validation-fraction 0.02
        --eval-every 100 --checkpoint-every 250 --seed 42 --device cpu)

scripts/bundled-model/corpus.sh "$work" >/dev/null
scripts/bundled-model/template.sh "$work/template" >/dev/null
cargo build --release --bin dnatune
dnatune=${CARGO_TARGET_DIR:-target}/release/dnatune

corpus=()
while IFS= read -r file; do corpus+=("$file"); done \
    < <(find "$work/corpus" -type f ! -name SOURCES.tsv | sort)
run="$work/run"
start=$(date +%s)
if [ -e "$run/latest" ]; then
    "$dnatune" pretrain --resume "$run" --max-steps "$steps"
else
    "$dnatune" pretrain --from-scratch --model "$work/template" "${corpus[@]}" --out "$run" \
        --max-steps "$steps" "${recipe[@]}"
fi
echo "pretraining took $(( $(date +%s) - start )) s on $(nproc) cores ($(uname -m))"

checkpoint="$run/$(cat "$run/latest")"
staging="$model.tmp"
rm -rf "$staging" && mkdir -p "$staging"
for file in config.json model.safetensors vocab.txt tokenizer_config.json special_tokens_map.json; do
    cp "$checkpoint/$file" "$staging/"
done
cp "$run/pretrain.json" "$run/history.jsonl" "$work/corpus/SOURCES.tsv" "$staging/"
# The model card (with the numbers of the committed run) stays; update it by hand.
[ -f "$model/README.md" ] && cp "$model/README.md" "$staging/"
rm -rf "$model" && mv "$staging" "$model"
echo "bundled model: $model ($(du -sh "$model" | cut -f1))"

if [ -n "${PYTHON:-}" ]; then
    # 16 demo windows (120 bp) and 8 stretches of 990 bp of E. coli (165 tokens each); the
    # `head`s end their pipes early.
    set +o pipefail
    {
        head -16 assets/demo/coding.fa
        head -16 assets/demo/noncoding.fa
        zcat -f "$work/corpus/ecoli536.fna.gz" | head -c 2000000 \
            | awk 'NR > 1 { printf "%s", $0 } END { print "" }' \
            | fold -w 990 | head -8 | awk '{ print ">ecoli_" NR; print }'
    } > "$work/check.fa"
    set -o pipefail
    "$PYTHON" scripts/check_mlm_logits.py "$model" "$work/check.fa" --dnatune "$dnatune"
fi
