#!/usr/bin/env bash
# The InvGAN paper's Table 3: RandFID and RandRecFID of a ReStyle encoder at 1, 2, 3 and 4
# refinement steps, each FID over 500 and 50,000 samples ("500/50000" cells):
# 1. the generator: GEN=<checkpoint> of an earlier run, or an InvGAN StyleGAN2 trained here on
#    the faces (experiment=celeba_stylegan_invgan);
# 2. a ReStyle encoder (pSp-based, experiment=celeba_restyle) trained against that generator;
# 3. evaluate.py inversion=restyle inversion.iterations=N for each N. RandFID does not depend
#    on the inversion (random samples G(M(z)) with the same seeds): it is computed with the
#    first N only and shown in every row, as the paper does;
# 4. benchmarks/summarize_restyle.py prints the table (and test-set MAE per N).
# Usage: bash benchmarks/restyle_table3.sh [out_dir]
# Environment (all optional):
#   SHARED          shared data folder holding faces/ (../shared/data)
#   DATA            data overrides (data.root=<faces> data.resolution=64)
#   GEN             a generator checkpoint to use instead of training one
#   GEN_OVERRIDES   extra train.py overrides of the generator run
#   RESTYLE_OVERRIDES  extra train.py overrides of the ReStyle run (e.g. trainer.max_steps=...)
#   ITERATIONS      refinement step counts ("1 2 3 4")
#   SAMPLES         FID sample counts ([500,50000])
#   REAL_COUNT      training images for the FID statistics (null: all of them)
#   EVAL_OVERRIDES  extra evaluate.py overrides (e.g. device=cpu)
# Finished runs and evaluations are kept, so an interrupted benchmark picks up where it stopped.
set -euo pipefail
OUT=${1:-logs/benchmarks/restyle_table3}
FACES=$(cd "${SHARED:-../shared/data}/faces" && pwd)
DATA=${DATA:-"data.root=$FACES data.resolution=64"}
ITERATIONS=${ITERATIONS:-"1 2 3 4"}
SAMPLES=${SAMPLES:-"[500,50000]"}
REAL_COUNT=${REAL_COUNT:-null}
QUIET="trainer.enable_progress_bar=false test=false optimized_metric=null"

train() {  # name, overrides...: a train.py run into $OUT/name, marked finished when it returns
  local name=$1
  shift
  [ -f "$OUT/$name/train_finished" ] || {
    python train.py "$@" $DATA $QUIET hydra.run.dir="$OUT/$name"
    touch "$OUT/$name/train_finished"
  }
}

if [ -z "${GEN:-}" ]; then
  train generator experiment=celeba_stylegan_invgan ${GEN_OVERRIDES:-}
  GEN=$OUT/generator/checkpoints/last.ckpt
fi
train restyle experiment=celeba_restyle model.generator.path="$GEN" ${RESTYLE_OVERRIDES:-}
RESTYLE=$OUT/restyle/checkpoints/last.ckpt

first=1
for n in $ITERATIONS; do
  which="[rand_rec_fid]"
  [ "$first" = 1 ] && which="[rand_fid,rand_rec_fid]"
  first=0
  [ -f "$OUT/eval/iter_$n/metrics.json" ] || python evaluate.py ckpt_path="$RESTYLE" \
    inversion=restyle inversion.iterations="$n" name="restyle_${n}itr" \
    "metrics.fid.which=$which" "metrics.fid.num_samples=$SAMPLES" \
    metrics.fid.real_count="$REAL_COUNT" metrics.kid.enabled=false \
    hydra.run.dir="$OUT/eval/iter_$n" ${EVAL_OVERRIDES:-}
done
python benchmarks/summarize_restyle.py "$OUT" $ITERATIONS
