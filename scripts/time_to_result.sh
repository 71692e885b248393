#!/usr/bin/env bash
# Time to result (README "Speed"): presets/twitter-uci.toml with all-MiniLM-L6-v2, one seed, run whole
# by sift-tui (tokenization, training, evaluation, checkpoints, results) and by
# scripts/pytorch_transfer.py on the same protocol, alternating side by side, one method at a time.
#   scripts/time_to_result.sh            # standard and sift, seed 1, 2 threads each
# Wall times go to results/time-to-result/times.tsv, PyTorch's scores to results/time-to-result/pytorch.jsonl;
# sift-tui's runs are runs of the label map's sweep, results/twitter-uci-hate-to-negative/.
# Needs target/release/sift-tui (or $SIFT_TUI), SIFT_DATA_DIR, SIFT_MODEL_PATH and a Python with torch +
# transformers ($PYTHON). METHODS, SEED and THREADS override the defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
threads="${THREADS:-2}"
seed="${SEED:-1}"
out=results/time-to-result
runs=results/twitter-uci-hate-to-negative
mkdir -p "$out"
[ -f "$out/times.tsv" ] || printf 'side\tmethod\tseed\tthreads\twall_s\tload_at_start\n' > "$out/times.tsv"
for method in ${METHODS:-standard sift}; do
  for side in sift-tui pytorch; do
    load=$(cut -d' ' -f1 /proc/loadavg)
    started=$(date +%s.%N)
    if [ "$side" = sift-tui ]; then
      RAYON_NUM_THREADS="$threads" "${SIFT_TUI:-target/release/sift-tui}" run presets/twitter-uci.toml --runs-dir "$runs" \
        --set 'sweep.models=["sentence-transformers/all-MiniLM-L6-v2"]' \
        --set "sweep.methods=[\"$method\"]" --set "sweep.seeds=[$seed]" 2>&1 | tail -n 3
    else
      "$python" scripts/pytorch_transfer.py --task twitter-uci --method "$method" --epochs 3 --max-len 128 \
        --model "$SIFT_MODEL_PATH/all-MiniLM-L6-v2" --seeds "$seed" --threads "$threads" --out "$out/pytorch.jsonl" \
        | cut -c1-300
    fi
    wall=$(echo "$(date +%s.%N) - $started" | bc)
    printf '%s\t%s\t%s\t%s\t%.1f\t%s\n' "$side" "$method" "$seed" "$threads" "$wall" "$load" >> "$out/times.tsv"
  done
  # A finished run directory keeps config, metrics and results; checkpoints stay out of the repository.
  run="$runs/twitter-uci__all-MiniLM-L6-v2__${method}__s${seed}"
  [ -f "$run/results.json" ] && rm -rf "$run/checkpoints"
done
