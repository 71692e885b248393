#!/usr/bin/env bash
# Seed-level agreement (docs/fidelity.md): the Twitter -> UCI protocol with all-MiniLM-L6-v2, standard
# fine-tuning, 2 epochs, max_len 64, seeds 1-5, run by sift-tui and by scripts/pytorch_transfer.py,
# alternating seed by seed. Needs target/release/sift-tui (or $SIFT_TUI), SIFT_DATA_DIR,
# SIFT_MODEL_PATH and a Python with torch + transformers ($PYTHON); THREADS (PyTorch) and
# RAYON_NUM_THREADS (sift-tui) set the threads of each side. Results: results/fidelity/.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
out=results/fidelity
for seed in ${SEEDS:-1 2 3 4 5}; do
  "${SIFT_TUI:-target/release/sift-tui}" run presets/twitter-uci.toml --runs-dir "$out/sift-tui" \
    --set 'sweep.models=["sentence-transformers/all-MiniLM-L6-v2"]' --set 'sweep.methods=["standard"]' \
    --set "sweep.seeds=[$seed]" --set train.epochs=2 --set train.max_len=64 --set train.checkpoint_every=0 2>&1 | tail -n 3
  "$python" scripts/pytorch_transfer.py --model "$SIFT_MODEL_PATH/all-MiniLM-L6-v2" --seeds "$seed" \
    --epochs 2 --max-len 64 --threads "${THREADS:-2}" --out "$out/pytorch.jsonl"
done
# Run directories keep config, metrics and results; checkpoints stay out of the repository.
find "$out/sift-tui" -name checkpoints -type d -prune -exec rm -rf {} +
