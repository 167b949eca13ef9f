#!/usr/bin/env bash
# The GPU check on the GPU machine: bash scripts/gpu_check.sh OUT [gpu_check.py options]
# That machine reaches no package registry: the packages it lacks (av, hydra-core, omegaconf, antlr4,
# iopath, pycocotools, sam2) travel as wheels in .whl/ (made here by scripts/gpu_wheels.sh; name .whl in
# the device call's carry). They go into /tmp/site, never into the machine's own Python.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: scripts/gpu_check.sh OUT [options]}
shift
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:$PYTHONPATH
nvidia-smi -L 2>/dev/null || true
python3 scripts/gpu_check.py --out "$OUT" "$@"
