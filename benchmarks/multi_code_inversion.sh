#!/usr/bin/env bash
# Multi-code inversion against single-code optimisation, on the same held-out faces and the same
# generator (the 32-px StyleGAN2 InvGAN of benchmarks/inversion_methods.sh), at the same number
# of Adam steps and the same loss (pixel MSE + LPIPS VGG at the images' own 32 px):
#   optimization_w  one w per image (plus noise maps, the method's default)
#   mganprior_20    mGANprior, 20 codes in Z composed at layer 2 (8x8 features + image so far)
#   pmsfc_4x5       PmSFC, 4 subspaces x 5 codes: as many codes as mGANprior
#   pmsfc_4x20      PmSFC, 4 subspaces x 20 codes: mGANprior's count in every subspace
# Writes the table (benchmarks/summarize_inversion.py) and the comparison figure
# docs/images/applications/multi_code.png (benchmarks/multi_code_inversion.py).
# Usage: bash benchmarks/multi_code_inversion.sh [out_dir]   (GEN, IMAGES, STEPS)
# Finished evaluations are kept, so an interrupted benchmark picks up where it stopped.
set -euo pipefail
OUT=${1:-logs/benchmarks/multi_code}
GEN=${GEN:-logs/benchmarks/inversion/generator/checkpoints/last.ckpt}
IMAGES=${IMAGES:-16}
STEPS=${STEPS:-150}
COMMON="ckpt_path=$GEN device=cpu metrics.fid.enabled=false metrics.runtime.enabled=false
  metrics.reconstruction.max_images=$IMAGES batch_size=$IMAGES metrics.grid.count=$IMAGES
  inversion.steps=$STEPS inversion.lpips.resize=null"
# Subspace discovery (Algorithm 1) runs once, outside the timed inversions, and is cached here.
PMSFC="inversion=pmsfc inversion.cache_dir=$OUT/pmsfc_subspaces inversion.discovery.steps=300"
evaluate() {  # name, overrides...: evaluate.py into $OUT/eval/name
  local name=$1
  shift
  # shellcheck disable=SC2086
  [ -f "$OUT/eval/$name/metrics.json" ] || python evaluate.py $COMMON "$@" \
    hydra.run.dir="$OUT/eval/$name"
}
evaluate optimization_w inversion=optimization inversion.space=w
evaluate mganprior_20 inversion=mganprior
# shellcheck disable=SC2086
evaluate pmsfc_4x5 $PMSFC
# shellcheck disable=SC2086
evaluate pmsfc_4x20 $PMSFC inversion.num_codes=20

METHODS="optimization_w mganprior_20 pmsfc_4x5 pmsfc_4x20"
# shellcheck disable=SC2086
python benchmarks/summarize_inversion.py "$OUT" $METHODS
# shellcheck disable=SC2086
python benchmarks/multi_code_inversion.py "$OUT" $METHODS
