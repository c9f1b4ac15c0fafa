#!/usr/bin/env bash
# GPU benchmark for one offline GPU, in two sections that each fit one call of a few minutes:
#   speed  benchmarks/gpu_benchmark.py: images/s of the bare loop and of the Trainer, kernels
#          and host syncs per iteration, peak memory, TFLOP/s, for five recipes (2-4 min on an
#          H200 by estimate, not yet measured)
#   mnist  train experiment=mnist_dcgan_invgan for MNIST_MINUTES, then evaluate.py (the paper's
#          Table 1 row) at each count of FID_COUNTS against the whole MNIST training set
#
# Usage: bash benchmarks/gpu_benchmark.sh OUT [speed|mnist|all] [PAYLOAD (.gpu_payload)]
# Where our Python packages are missing, PAYLOAD (built by benchmarks/gpu_payload.sh) brings
# them and the data; one call carries at most 64 MiB, so on such a machine run two calls,
# back to back (the first leaves half of the Inception weights in /tmp for the second):
#   call 1, carry [.gpu_payload/whl, .gpu_payload/a, .gpu_payload/lpips]:
#     bash benchmarks/gpu_benchmark.sh $OUT speed
#   call 2, carry [.gpu_payload/whl, .gpu_payload/b, .gpu_payload/mnist]:
#     MNIST_MINUTES=5 bash benchmarks/gpu_benchmark.sh $OUT mnist
# On a machine with the project installed and INVGAN_* set (README), `all` runs both.
# A section that fails prints its error and the next one runs. OUT receives at most 7 files:
# speed.log, gpu_benchmark.md, gpu_benchmark.json, mnist.log, mnist_eval.json,
# mnist_samples.png, mnist_reconstructions.png.
# Settings (environment): MNIST_MINUTES (5), FID_COUNTS ("500 50000"), REAL_COUNT (null: all
# 60,000 training images), SPEED_ARGS (gpu_benchmark.py options and overrides, e.g. "--tiny"
# or "trainer.precision=bf16-mixed"), TRAIN_ARGS, EVAL_ARGS (extra overrides), PYTHON
# (python3), WORK (/tmp/invgan_gpu), FORCE_WHEELS=1 (install the wheels even when importable).
# CPU dry run: SPEED_ARGS=--tiny MNIST_MINUTES=1 FID_COUNTS=200 REAL_COUNT=200 \
#   EVAL_ARGS="metrics.kid.real_count=200 metrics.reconstruction.max_images=500" \
#   bash benchmarks/gpu_benchmark.sh /tmp/out all
set -uo pipefail # no -e: a failing section must not stop the others
OUT=${1:?usage: bash benchmarks/gpu_benchmark.sh OUT [speed|mnist|all] [PAYLOAD]}
WHAT=${2:-all}
PAYLOAD=$(realpath -m "${3:-.gpu_payload}")
PYTHON=${PYTHON:-python3}
WORK=${WORK:-/tmp/invgan_gpu}
MNIST_MINUTES=${MNIST_MINUTES:-5}
FID_COUNTS=${FID_COUNTS:-500 50000}
REAL_COUNT=${REAL_COUNT:-null}
INCEPTION_FILE=weights-inception-2015-12-05-6726825d.pth
export PYTHONUNBUFFERED=1
mkdir -p "$OUT" "$WORK"

stamp() { echo "[$(date +%T)] $*"; }

# Our pure-Python dependencies: importable already, or installed from the payload's wheels.
if [ -z "${FORCE_WHEELS:-}" ] && "$PYTHON" -c "import hydra, omegaconf, lpips, torch_fidelity" \
  2>/dev/null; then
  export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
else
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site "$PAYLOAD"/whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
fi
# Half of the Inception weights travels with each call: keep the first for the next call.
if [ -f "$PAYLOAD/a/inception.part1" ]; then
  cp "$PAYLOAD/a/inception.part1" /tmp/inception.part1
fi
if [ -z "${INVGAN_LPIPS_ALEX_WEIGHTS:-}" ] && [ -f "$PAYLOAD/lpips/lpips_alex_full.pth" ]; then
  export INVGAN_LPIPS_ALEX_WEIGHTS=$PAYLOAD/lpips/lpips_alex_full.pth
fi

environment() {
  stamp "environment"
  command -v nvidia-smi >/dev/null &&
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  "$PYTHON" - <<'EOF'
import importlib.metadata as metadata, platform, torch
names = ["torch", "torchvision", "pytorch-lightning", "torchmetrics", "hydra-core", "omegaconf",
         "lpips", "torch-fidelity"]
versions = {}
for name in names:
    try:
        versions[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
        versions[name] = "missing"
print("python", platform.python_version(), versions, "cuda", torch.version.cuda,
      "available", torch.cuda.is_available())
EOF
}

speed() {
  # shellcheck disable=SC2086  # SPEED_ARGS holds several words
  "$PYTHON" benchmarks/gpu_benchmark.py --out "$OUT" ${SPEED_ARGS:-}
}

inception_weights() { # export INVGAN_INCEPTION_WEIGHTS, reassembled from the halves if needed
  if [ -f "${INVGAN_INCEPTION_WEIGHTS:-}" ]; then
    return 0
  fi
  local part1=/tmp/inception.part1 part2=$PAYLOAD/b/inception.part2
  if [ ! -f "$part1" ] || [ ! -f "$part2" ]; then
    echo "Inception weights: need $part1 (left by the speed call) and $part2"
    return 1
  fi
  cat "$part1" "$part2" >"$WORK/$INCEPTION_FILE"
  (cd "$WORK" && sha256sum -c "$PAYLOAD/b/inception.sha256") || return 1
  export INVGAN_INCEPTION_WEIGHTS=$WORK/$INCEPTION_FILE
}

lpips_overrides() { # evaluate.py's LPIPS nets: those whose weights are here, or none
  local nets=()
  [ -f "${INVGAN_LPIPS_ALEX_WEIGHTS:-}" ] && nets+=(alex)
  [ -f "${INVGAN_LPIPS_VGG_WEIGHTS:-}" ] && nets+=(vgg)
  if [ ${#nets[@]} -eq 0 ]; then
    echo "metrics.lpips.enabled=false"
  else
    echo "metrics.lpips.nets=[$(
      IFS=,
      echo "${nets[*]}"
    )]"
  fi
}

mnist() {
  local run=$WORK/mnist_run trainer=cpu
  "$PYTHON" -c "import sys, torch; sys.exit(not torch.cuda.is_available())" && trainer=gpu
  if [ -d "$PAYLOAD/mnist" ]; then
    export INVGAN_DATA_DIR=$PAYLOAD # the datamodule reads $INVGAN_DATA_DIR/mnist
  fi
  export INVGAN_CACHE_DIR=$WORK/cache # FID statistics of the real images, shared by evaluations
  local metrics=(metrics.fid.real_count="$REAL_COUNT")
  if ! inception_weights; then
    echo "FID and KID off: no Inception weights"
    metrics=(metrics.fid.enabled=false metrics.kid.enabled=false)
  fi
  local lpips
  lpips=$(lpips_overrides)
  echo "LPIPS: $lpips"
  rm -rf "$run"
  local limit
  limit=$(printf '00:%02d:%02d:00' $((MNIST_MINUTES / 60)) $((MNIST_MINUTES % 60))) # DD:HH:MM:SS
  stamp "train $MNIST_MINUTES min on $trainer"
  # shellcheck disable=SC2086  # TRAIN_ARGS holds several words
  "$PYTHON" train.py experiment=mnist_dcgan_invgan trainer="$trainer" trainer.max_time="$limit" \
    trainer.enable_progress_bar=false hydra.run.dir="$run" ${TRAIN_ARGS:-} ||
    echo "train.py failed; evaluating its last checkpoint if there is one"
  [ -f "$run/checkpoints/last.ckpt" ] || return 1
  local first=1
  for count in $FID_COUNTS; do
    stamp "evaluate, FID at $count samples"
    local once=("$lpips") # reconstruction metrics, LPIPS and run time: in the first evaluation
    [ $first -eq 1 ] || once=(metrics.reconstruction.enabled=false metrics.lpips.enabled=false
      metrics.runtime.enabled=false metrics.grid.enabled=false)
    rm -rf "$WORK/eval_$count" # no stale metrics.json if this evaluation fails
    # shellcheck disable=SC2086  # EVAL_ARGS holds several words
    "$PYTHON" evaluate.py ckpt_path="$run/checkpoints/last.ckpt" \
      hydra.run.dir="$WORK/eval_$count" metrics.fid.num_samples="$count" "${metrics[@]}" \
      "${once[@]}" ${EVAL_ARGS:-} && cat "$WORK/eval_$count/table.md"
    first=0
  done
  stamp "collect"
  "$PYTHON" - "$WORK" "$OUT/mnist_eval.json" $FID_COUNTS <<'EOF'
import json, sys
from pathlib import Path
work, out, counts = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
found = {c: work / f"eval_{c}" / "metrics.json" for c in counts}
merged = {c: json.loads(path.read_text()) for c, path in found.items() if path.is_file()}
out.write_text(json.dumps(merged, indent=2) + "\n")
print(f"{out}: evaluations at {sorted(merged, key=int)}")
EOF
  for kind in samples reconstructions; do
    local last
    last=$(find "$run/images" -name "${kind}_*.png" 2>/dev/null | sort | tail -n 1)
    [ -n "$last" ] && cp "$last" "$OUT/mnist_$kind.png" && echo "$OUT/mnist_$kind.png: $last"
  done
}

section() { # run a section, its output also in OUT/<name>.log; a failure is reported, not fatal
  local name=$1
  {
    environment
    stamp "section $name"
    ("$name")
    stamp "section $name: exit status $?"
  } 2>&1 | tee "$OUT/$name.log"
}

case $WHAT in
speed | mnist) section "$WHAT" ;;
all)
  section speed
  section mnist
  ;;
*) echo "unknown section $WHAT: speed, mnist or all" && exit 2 ;;
esac
