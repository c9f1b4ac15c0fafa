#!/usr/bin/env bash
# Backbone benchmark on this machine, recorded in docs/benchmarks.md:
# 1. training throughput (images/s) of each backbone at its experiment's resolution, at the
#    experiment's full width and at the reduced width used below;
# 2. a short real run of each experiment at reduced width on the shared data (sample grids);
# 3. tiled-reconstruction MAE of the shared natural photos after the patch-GAN run.
# Usage: bash benchmarks/backbones.sh [out_dir]   (SHARED=<shared data dir>, MINUTES=<per run>)
set -euo pipefail
OUT=${1:-logs/benchmarks/backbones}
SHARED=$(cd "${SHARED:-../shared/data}" && pwd)
MINUTES=${MINUTES:-4}
PATCH_MINUTES=${PATCH_MINUTES:-10}
declare -A ROOT=(
  [celeba_stylegan_invgan]=faces [ffhq_stylegan_invgan]=faces [imagenet_biggan_patches]=natural
)
declare -A REDUCED=(
  [celeba_stylegan_invgan]="model.generator.channel_max=64 model.generator.w_dim=128"
  [ffhq_stylegan_invgan]="model.generator.channel_max=32 model.generator.w_dim=128"
  [imagenet_biggan_patches]="model.generator.base_width=16 model.discriminator.base_width=16"
)
COMMON="trainer.enable_progress_bar=false trainer.log_every_n_steps=1 data.batch_size=8"

# Runs whose checkpoint exists are kept, so an interrupted benchmark picks up where it stopped.
done_run() { [ -f "$OUT/$1/checkpoints/last.ckpt" ]; }

for exp in celeba_stylegan_invgan ffhq_stylegan_invgan imagenet_biggan_patches; do
  data="data.root=$SHARED/${ROOT[$exp]}"
  # Throughput at full width: a few iterations, no validation.
  done_run "$exp/full_width" || python train.py experiment=$exp $data $COMMON hydra.run.dir="$OUT/$exp/full_width" \
    trainer.max_steps=8 trainer.limit_val_batches=0 test=false optimized_metric=null \
    data.batch_size=4
  # Reduced width: a real run of MINUTES (PATCH_MINUTES for the patch GAN).
  minutes=$MINUTES
  [ $exp = imagenet_biggan_patches ] && minutes=$PATCH_MINUTES
  done_run "$exp/reduced_width" || python train.py experiment=$exp $data $COMMON ${REDUCED[$exp]} \
    hydra.run.dir="$OUT/$exp/reduced_width" trainer.max_time="00:00:$(printf %02d "$minutes"):00" \
    trainer.val_check_interval=100 callbacks.image_grids.every_n_iterations=100000
done

patch_ckpt="$OUT/imagenet_biggan_patches/reduced_width/checkpoints/last.ckpt"
python evaluate.py ckpt_path="$patch_ckpt" hydra.run.dir="$OUT/tiled_eval" \
  metrics.fid.enabled=false metrics.runtime.enabled=false
# Figure: 8 photos of the patch run's test split, tiled as 4x4 grids of 32-px patches.
python benchmarks/test_split_images.py "$OUT/imagenet_biggan_patches/reduced_width" 8 \
  "$OUT/tiled_inputs"
python -m invgan.apply application=tiled_reconstruction ckpt_path="$patch_ckpt" \
  inputs="$OUT/tiled_inputs" size=128 hydra.run.dir="$OUT/tiled_apply"
python benchmarks/summarize_backbones.py "$OUT"
