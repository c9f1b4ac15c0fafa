#!/usr/bin/env bash
# Short MNIST InvGAN runs that compare recipe settings at equal training time (6 minutes each
# on the 2-core CPU), scored by RandFID: 500 EMA samples against the cached statistics of
# REAL_COUNT training images. Winners that also win a 30-minute run (benchmarks/mnist_invgan.sh)
# go into conf/experiment/mnist_dcgan_invgan.yaml; docs/benchmarks.md records the results.
# Each setting's name and overrides are one line below.
# Usage: INVGAN_DATA_DIR=../shared/data INVGAN_INCEPTION_WEIGHTS=<file> \
#        bash benchmarks/mnist_invgan_tuning.sh [out_dir] [real_count] [minutes]
set -euo pipefail
OUT=${1:-logs/benchmarks/mnist_invgan_tuning}
REAL_COUNT=${2:-10000}
MINUTES=${3:-6}
# Round 1 changes the optimiser and the MMD from the settings before it; round 2 changes the
# precision and the discriminator from round 1's winner, lr5e-4_narrow_mmd (the experiment).
# Round 3 reruns the experiment as it is (r3_baseline) and changes the balance between the
# adversarial and the reconstruction terms.
WIDE_MMD="model.loss.mmd_bandwidths=[0.2,0.5,1.0,2.0,5.0]"
LR5="model.optimizer_g.lr=5e-4 model.optimizer_d.lr=5e-4"
SETTINGS=(
  "lr2e-4 model.optimizer_g.lr=2e-4 model.optimizer_d.lr=2e-4 $WIDE_MMD"
  "lr5e-4 $LR5 $WIDE_MMD"
  "lr1e-3 model.optimizer_g.lr=1e-3 model.optimizer_d.lr=1e-3 $WIDE_MMD"
  "lr2e-4_no_rec_fakes model.optimizer_g.lr=2e-4 model.optimizer_d.lr=2e-4 $WIDE_MMD model.loss.adversarial_on_reconstructions=false"
  "lr5e-4_no_rec_fakes $LR5 $WIDE_MMD model.loss.adversarial_on_reconstructions=false"
  "lr5e-4_narrow_mmd $LR5"
  "r2_d_width64 $LR5 model.discriminator.base_width=64"
  "r2_d_convs2 $LR5 model.discriminator.convs_per_scale=2"
  "r2_bf16 $LR5 trainer.precision=bf16-mixed"
  "r2_bf16_d_convs2 $LR5 trainer.precision=bf16-mixed model.discriminator.convs_per_scale=2"
  "r2_bf16_d_convs3 $LR5 trainer.precision=bf16-mixed model.discriminator.convs_per_scale=3"
  "r3_baseline"
  "r3_adversarial_weight3 model.loss.adversarial_weight=3"
  "r3_adversarial_weight0.3 model.loss.adversarial_weight=0.3"
  "r3_pixel_weight0.3 model.loss.pixel_weight=0.3"
  "r3_d_lr1e-3 model.optimizer_d.lr=1e-3"
  "r3_hinge model.loss.adversarial=hinge"
)
for setting in "${SETTINGS[@]}"; do
  read -r name overrides <<<"$setting"
  # shellcheck disable=SC2086  # the overrides are separate words
  python train.py experiment=mnist_dcgan_invgan hydra.run.dir="$OUT/$name" \
    trainer.enable_progress_bar=false "trainer.max_time=00:00:$(printf %02d "$MINUTES"):00" \
    $overrides
  python evaluate.py ckpt_path="$OUT/$name/checkpoints/last.ckpt" hydra.run.dir="$OUT/$name/eval" \
    metrics.fid.real_count="$REAL_COUNT" "metrics.fid.which=[rand_fid]" \
    metrics.reconstruction.enabled=false metrics.lpips.enabled=false metrics.kid.enabled=false \
    metrics.runtime.enabled=false metrics.grid.enabled=false
done
python benchmarks/summarize_tuning.py "$OUT"
