#!/usr/bin/env bash
# Builds the git-ignored folder that benchmarks/gpu_benchmark.sh needs on an offline GPU machine
# whose Python has torch, torchvision, pytorch-lightning, torchmetrics and scipy but not our
# pure-Python dependencies, when one call there may carry at most 64 MiB (tree included):
#
#   DIR/whl/    wheels of hydra-core, omegaconf, antlr4-python3-runtime, lpips, torch-fidelity
#               (torchmetrics' FID takes its Inception network from torch-fidelity), at the
#               versions installed here, for CPython 3.12 on x86-64
#   DIR/a/      inception.part1: first half of the FID Inception weights (87 MB in all)
#   DIR/b/      inception.part2: second half, and inception.sha256 to check the reassembly
#   DIR/mnist/  the four MNIST IDX files (DIR is then the data root: INVGAN_DATA_DIR=DIR)
#   DIR/lpips/  lpips_alex_full.pth: LPIPS-alex weights for the pSp recipe's loss
#
# First call (speed section) carries DIR/whl DIR/a DIR/lpips; it leaves part1 in /tmp. The
# second (mnist section), right after it on the same machine, carries DIR/whl DIR/b DIR/mnist.
# Usage: bash benchmarks/gpu_payload.sh [DIR (default .gpu_payload)]
# Needs pip with access to PyPI, and the shared weights and data (WEIGHTS, DATA below).
set -euo pipefail
DIR=${1:-.gpu_payload}
WEIGHTS=${WEIGHTS:-../shared/weights}
DATA=${DATA:-${INVGAN_DATA_DIR:-../shared/data}}
PYTHON=${PYTHON:-python}
INCEPTION=$WEIGHTS/weights-inception-2015-12-05-6726825d.pth
LIMIT=$((64 * 1024 * 1024))  # bytes one call may carry, the working tree included

version() {  # the version of a distribution installed here
  "$PYTHON" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$1"
}

rm -rf "$DIR/whl" "$DIR/a" "$DIR/b" "$DIR/mnist" "$DIR/lpips"
mkdir -p "$DIR/whl" "$DIR/a" "$DIR/b" "$DIR/mnist" "$DIR/lpips"

"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux2014_x86_64 --platform any -d "$DIR/whl" \
  "hydra-core==$(version hydra-core)" "omegaconf==$(version omegaconf)" \
  "lpips==$(version lpips)" "torch-fidelity==$(version torch-fidelity)"
# PyPI has only a source archive of antlr4-python3-runtime 4.9.3 (omegaconf pins 4.9.*): build
# its pure-Python wheel here.
"$PYTHON" -m pip wheel -q --no-deps "antlr4-python3-runtime==$(version antlr4-python3-runtime)" \
  -w "$DIR/whl"

size=$(stat -c %s "$INCEPTION")
half=$(((size + 1) / 2))
head -c "$half" "$INCEPTION" >"$DIR/a/inception.part1"
tail -c +"$((half + 1))" "$INCEPTION" >"$DIR/b/inception.part2"
(cd "$WEIGHTS" && sha256sum weights-inception-2015-12-05-6726825d.pth) >"$DIR/b/inception.sha256"
cp "$DATA"/mnist/*-ubyte.gz "$DIR/mnist/"
cp "$WEIGHTS/lpips_alex_full.pth" "$DIR/lpips/"

bytes() { du -cb "$@" 2>/dev/null | tail -n 1 | cut -f 1; }
# What travels besides the carried folders: tracked and untracked-but-not-ignored files.
tree=$(git ls-files -z --cached --others --exclude-standard | du -cb --files0-from=- 2>/dev/null |
  tail -n 1 | cut -f 1)
report() {  # name, then the carried folders
  local name=$1
  shift
  awk -v name="$name" -v what="$*" -v carried="$(bytes "$@")" -v tree="$tree" -v limit="$LIMIT" \
    'BEGIN { total = carried + tree
      printf "%s: carry %s = %.1f MB; with the %.1f MB tree %.1f MB of %.1f MB: %s\n", name, what,
        carried / 1e6, tree / 1e6, total / 1e6, limit / 1e6, total <= limit ? "fits" : "TOO BIG" }'
}
ls -l "$DIR"/*/
report "call 1 (speed)" "$DIR/whl" "$DIR/a" "$DIR/lpips"
report "call 2 (mnist)" "$DIR/whl" "$DIR/b" "$DIR/mnist"
report "call 2 + LPIPS-alex (evaluate's LPIPS)" "$DIR/whl" "$DIR/b" "$DIR/mnist" "$DIR/lpips"
