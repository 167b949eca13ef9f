#!/usr/bin/env bash
# Installs tracker into ./.venv on a fresh machine.
#  - torch: the CPU build where there is no NVIDIA GPU (never the multi-GB CUDA stack there),
#    the registry's CUDA build where `nvidia-smi` sees a GPU. TORCH_SPEC overrides (e.g. "torch==2.13.0").
#  - sam2 1.1.0 with --no-deps --no-build-isolation: its build needs torch, and its torchvision pin
#    would replace CPU torch. SAM2_BUILD_CUDA=0 without a GPU (its CUDA extension is optional).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@"; }
# numpy before torch: torch imported without it warns "Failed to initialize NumPy".
pip install --upgrade "pip>=23" setuptools wheel "numpy>=1.24"
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  GPU=1
else
  GPU=0
fi
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  pip install "$TORCH_SPEC"
fi
if [ "$GPU" = 0 ] && .venv/bin/python -c "import torch,sys; sys.exit(0 if torch.version.cuda else 1)"; then
  echo "warning: a CUDA build of torch is installed on a machine without a GPU" >&2
fi
# PYTHONWARNINGS: setuptools warns on every editable install that a folder named like the package may
# shadow it (the checkout is that folder, on purpose). editable_mode=compat puts the checkout on sys.path
# (a .pth line) instead of a finder that Python asks last: with the finder, `import tracker` run beside a
# folder called tracker (the clone itself) found that folder as an empty namespace package.
PYTHONWARNINGS=ignore pip install -e ".[decord,experiments,studio,supervision,test]" \
  --config-settings editable_mode=compat
if ! .venv/bin/python -c "import sam2.modeling.sam2_base" >/dev/null 2>&1; then
  SAM2_BUILD_CUDA=$GPU pip install --no-deps --no-build-isolation "sam2==1.1.0"
fi
# Ultralytics' own dataset check, for the tests of yolo/ (tests/test_interop.py): kept out of the venv's
# packages (--target), without its dependencies: its torchvision is a CUDA build that must not shadow
# anything here, and only its data module (which needs no torchvision kernels) is used.
if [ ! -d .venv/ultralytics/ultralytics ]; then
  pip install --no-deps --target .venv/ultralytics "ultralytics==8.4.190" "torchvision==0.28.0"
fi
.venv/bin/python -c "import torch, sam2, av, cv2, tracker; print('tracker ready: torch', torch.__version__, '| cuda', torch.cuda.is_available())"
