#!/usr/bin/env bash
# Inversion methods compared on the same held-out faces and the same small generator, recorded
# in docs/benchmarks.md:
# 1. the generator: InvGAN with a reduced-width StyleGAN2 on the shared faces at 32 px (its
#    discriminator's latent head is one of the methods);
# 2. pSp, e4e, ReStyle (pSp-based) and in-domain encoders trained on the same training faces
#    against that generator (its live networks, the ones InvGAN's latent head inverts);
# 3. evaluate.py on the test split (100 faces) with every inversion method: the encoders,
#    ReStyle at 1-5 refinement steps, in-domain + domain-regularised optimisation, pure
#    optimisation in W and W+, hybrids (optimisation started from pSp and from InvGAN's head)
#    and PTI (generator tuned around a W-optimisation pivot).
# Usage: bash benchmarks/inversion_methods.sh [out_dir]
#   (SHARED=<shared data dir>, GEN_MINUTES or GEN_ITERATIONS (a fixed, reproducible budget),
#    ENC_MINUTES, STEPS=<pure optimisation steps>,
#    TUNE_STEPS=<PTI's generator steps>)
# Finished runs and evaluations are kept, so an interrupted benchmark picks up where it stopped.
set -euo pipefail
OUT=${1:-logs/benchmarks/inversion}
FACES=$(cd "${SHARED:-../shared/data}/faces" && pwd)
minutes() { printf "00:00:%02d:00" "$1"; }
GEN_MINUTES=${GEN_MINUTES:-40}
# Two optimizer steps (generator side, discriminator) per InvGAN iteration.
GEN_BUDGET="trainer.max_time=$(minutes "$GEN_MINUTES")"
[ -z "${GEN_ITERATIONS:-}" ] || GEN_BUDGET="trainer.max_steps=$((2 * GEN_ITERATIONS))"
ENC_MINUTES=${ENC_MINUTES:-15}
STEPS=${STEPS:-300}
TUNE_STEPS=${TUNE_STEPS:-100}
DATA="data.root=$FACES data.resolution=32 data.eval_batch_size=100"
QUIET="trainer.enable_progress_bar=false test=false optimized_metric=null"
done_run() { [ -f "$OUT/$1/train_finished" ]; }
train() {  # name, overrides...: a train.py run into $OUT/name, marked finished when it returns
  local name=$1
  shift
  done_run "$name" || {
    python train.py "$@" $DATA $QUIET hydra.run.dir="$OUT/$name"
    touch "$OUT/$name/train_finished"
  }
}

train generator experiment=celeba_stylegan_invgan data.batch_size=16 \
  model.generator.channel_max=64 model.generator.w_dim=128 model.loss.r1_gamma=0.0128 \
  "$GEN_BUDGET" callbacks.image_grids.every_n_iterations=1000
GEN=$OUT/generator/checkpoints/last.ckpt
ENCODER_RUN="model.generator.path=$GEN model.generator.networks=live data.batch_size=8
  trainer.max_time=$(minutes "$ENC_MINUTES") callbacks.image_grids.every_n_iterations=1000"
train psp experiment=celeba_psp $ENCODER_RUN "model.encoder.blocks=[1,1,1,1]" \
  model.encoder.base_width=16 trainer.max_steps=-1 trainer.val_check_interval=250
# e4e's offsets join one by one over the first half of the run at CPU step rates (its
# 20,000 / 2,000 schedule is sized for 200,000 steps).
train e4e experiment=celeba_e4e $ENCODER_RUN "model.encoder.blocks=[1,1,1,1]" \
  model.encoder.base_width=16 trainer.max_steps=-1 trainer.val_check_interval=250 \
  model.progressive_start=500 model.progressive_interval=100
train restyle experiment=celeba_restyle $ENCODER_RUN "model.encoder.blocks=[1,1,1,1]" \
  model.encoder.base_width=16 trainer.max_steps=-1 trainer.val_check_interval=250
train indomain experiment=celeba_indomain $ENCODER_RUN model.encoder.base_width=16 \
  model.encoder.max_width=64 model.discriminator.channel_max=64 trainer.max_epochs=null

evaluate() {  # name, checkpoint, overrides...: evaluate.py into $OUT/eval/name
  local name=$1 ckpt=$2
  shift 2
  [ -f "$OUT/eval/$name/metrics.json" ] || python evaluate.py ckpt_path="$ckpt" device=cpu \
    metrics.fid.enabled=false metrics.runtime.enabled=false hydra.run.dir="$OUT/eval/$name" "$@"
}
# LPIPS inside the optimisation loss at the images' own 32 px: upsampling to 64 px first (the
# config default) costs 4x more per step on a CPU.
OPTIMIZE="inversion.lpips.resize=null"
PSP=$OUT/psp/checkpoints/last.ckpt
INDOMAIN=$OUT/indomain/checkpoints/last.ckpt
E4E=$OUT/e4e/checkpoints/last.ckpt
RESTYLE=$OUT/restyle/checkpoints/last.ckpt
evaluate invgan_head "$GEN" inversion=encoder
evaluate psp "$PSP" inversion=encoder
evaluate e4e "$E4E" inversion=encoder
for n in 1 2 3 4 5; do
  evaluate "restyle_$n" "$RESTYLE" inversion=restyle inversion.iterations="$n"
done
evaluate indomain "$INDOMAIN" inversion=encoder
evaluate indomain_regularized "$INDOMAIN" inversion=domain_regularized $OPTIMIZE
evaluate optimization_w "$GEN" inversion=optimization inversion.space=w inversion.steps="$STEPS" \
  $OPTIMIZE
evaluate optimization_w_plus "$GEN" inversion=optimization inversion.space=w_plus \
  inversion.steps="$STEPS" $OPTIMIZE
evaluate hybrid_psp "$PSP" inversion=hybrid $OPTIMIZE
evaluate hybrid_invgan_head "$GEN" inversion=hybrid $OPTIMIZE
# PTI: the W pivot of optimization_w, then TUNE_STEPS generator steps (the paper's 350 would
# cost 3.5x more here). The locality radius scales with the code norm: 30 in the paper's
# 512-d W, 30 * sqrt(128 / 512) = 15 for this generator's 128-d W.
evaluate pti "$GEN" inversion=pti inversion.pivot.steps="$STEPS" inversion.pivot.lpips.resize=null \
  inversion.tune_steps="$TUNE_STEPS" inversion.locality_alpha=15
# Equal short budgets: what the encoder's starting point is worth.
evaluate optimization_w_plus_50 "$GEN" inversion=optimization inversion.space=w_plus \
  inversion.steps=50 $OPTIMIZE
evaluate hybrid_psp_50 "$PSP" inversion=hybrid inversion.steps=50 $OPTIMIZE

python benchmarks/summarize_inversion.py "$OUT" invgan_head psp e4e restyle_1 restyle_2 \
  restyle_3 restyle_4 restyle_5 indomain indomain_regularized optimization_w \
  optimization_w_plus hybrid_psp hybrid_invgan_head pti optimization_w_plus_50 hybrid_psp_50
