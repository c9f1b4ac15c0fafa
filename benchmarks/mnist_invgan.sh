#!/usr/bin/env bash
# MNIST InvGAN benchmark (issue: the paper's Table 1 "DCGAN, MNIST" row within 30 minutes of
# training): train, evaluate snapshots for MAE/FID-vs-time curves, evaluate the final model.
# Usage: INVGAN_DATA_DIR=../shared/data INVGAN_INCEPTION_WEIGHTS=<file> \
#        INVGAN_LPIPS_ALEX_WEIGHTS=<file> INVGAN_LPIPS_VGG_WEIGHTS=<file> \
#        bash benchmarks/mnist_invgan.sh [run_dir] [real_count] [train.py overrides...]
# real_count: training images for the FID reference statistics (default: all 60,000).
set -euo pipefail
RUN=${1:-logs/benchmarks/mnist_invgan}
REAL_COUNT=${2:-null}
shift $(($# < 2 ? $# : 2))
SNAPSHOT_EVERY=6000  # Lightning steps = 3000 training iterations (two optimizer steps each)

python train.py experiment=mnist_dcgan_invgan hydra.run.dir="$RUN" \
  trainer.enable_progress_bar=false \
  +callbacks.snapshots._target_=pytorch_lightning.callbacks.ModelCheckpoint \
  +callbacks.snapshots.dirpath="$RUN/snapshots" \
  +callbacks.snapshots.every_n_train_steps=$SNAPSHOT_EVERY \
  +callbacks.snapshots.save_top_k=-1 \
  +callbacks.snapshots.auto_insert_metric_name=false \
  "+callbacks.snapshots.filename='step_{step}'" "$@"

for ckpt in "$RUN"/snapshots/*.ckpt; do
  name=$(basename "$ckpt" .ckpt)
  python evaluate.py ckpt_path="$ckpt" hydra.run.dir="$RUN/eval/$name" \
    metrics.fid.real_count="$REAL_COUNT" "metrics.fid.which=[rand_fid,ts_rec_fid]" \
    metrics.runtime.enabled=false metrics.lpips.enabled=false metrics.kid.enabled=false
done
# KID keeps every real feature row (not just moments): 2,000 training images, about 5 minutes
# of Inception on the CPU.
python evaluate.py ckpt_path="$RUN/checkpoints/last.ckpt" hydra.run.dir="$RUN/eval/final" \
  metrics.fid.real_count="$REAL_COUNT" metrics.kid.real_count=2000
python benchmarks/summarize.py "$RUN"
