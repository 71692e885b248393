#!/usr/bin/env bash
# Seed-level agreement (docs/fidelity.md), all-MiniLM-L6-v2, standard fine-tuning, seeds 1-5, run by
# sift-tui and by scripts/pytorch_transfer.py, alternating seed by seed:
#   scripts/seed_agreement.sh twitter-uci  # 4,000 tweets, 2 epochs, max_len 64 -> results/fidelity/
#   scripts/seed_agreement.sh cola         # the whole training file, 3 epochs -> results/fidelity-cola/
# Needs target/release/sift-tui (or $SIFT_TUI), SIFT_DATA_DIR, SIFT_MODEL_PATH and a Python with torch +
# transformers ($PYTHON); THREADS (PyTorch) and RAYON_NUM_THREADS (sift-tui) set the threads of each
# side, SEEDS the seeds, SIDES ("sift-tui pytorch" by default) which sides run: two processes, one a
# side, use two cores.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
minilm='sweep.models=["sentence-transformers/all-MiniLM-L6-v2"]'
case "${1:?usage: seed_agreement.sh twitter-uci|cola}" in
  twitter-uci)
    out=results/fidelity
    ours=(presets/twitter-uci.toml --set train.epochs=2 --set train.max_len=64 --set train.checkpoint_every=0)
    theirs=(--task twitter-uci --epochs 2 --max-len 64) ;;
  cola)
    out=results/fidelity-cola
    # The preset as it is, so that seeds 1-3 are also the standard arm of results/cola.
    ours=(presets/cola.toml)
    theirs=(--task cola --limit 0 --epochs 3 --max-len 64 --metric mcc) ;;
  *) echo "unknown task $1 (twitter-uci or cola)" >&2; exit 2 ;;
esac
for seed in ${SEEDS:-1 2 3 4 5}; do
  for side in ${SIDES:-sift-tui pytorch}; do
    if [ "$side" = sift-tui ]; then
      "${SIFT_TUI:-target/release/sift-tui}" run "${ours[@]}" --runs-dir "$out/sift-tui" --set "$minilm" \
        --set 'sweep.methods=["standard"]' --set "sweep.seeds=[$seed]" 2>&1 | tail -n 3
    else
      "$python" scripts/pytorch_transfer.py "${theirs[@]}" --model "$SIFT_MODEL_PATH/all-MiniLM-L6-v2" \
        --seeds "$seed" --threads "${THREADS:-2}" --out "$out/pytorch.jsonl"
    fi
  done
done
# Run directories keep config, metrics and results; checkpoints stay out of the repository.
find "$out/sift-tui" -name checkpoints -type d -prune -exec rm -rf {} +
