#!/usr/bin/env bash
# Wheels for the GPU machine (Python 3.12, x86-64, no registry there) into .whl/ (git-ignored), for
# scripts/gpu_check.sh. Its image already has torch, torchvision, numpy, OpenCV, Pillow, tqdm, PyYAML,
# portalocker and pytest; this fetches the rest (decord too), builds antlr4 4.9.3 and iopath 0.1.10 (no wheels on PyPI) and sam2
# (its CUDA extension is optional: SAM2_BUILD_CUDA=0).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
rm -rf .whl && mkdir -p .whl
plat=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  plat+=(--platform "$p")
done
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${plat[@]}" \
  -d .whl "av==$("$PY" -c 'import av; print(av.__version__)')" hydra-core==1.3.2 omegaconf==2.3.0 \
  "pycocotools==$("$PY" -c 'from importlib.metadata import version; print(version("pycocotools"))')"
# decord: upstream's init_state reads an mp4 through it (its one wheel is tagged manylinux2010)
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux2010_x86_64 -d .whl decord==0.6.0
"$PY" -m pip wheel -q --no-deps -w .whl antlr4-python3-runtime==4.9.3 iopath==0.1.10
SAM2_BUILD_CUDA=0 "$PY" -m pip wheel -q --no-deps --no-build-isolation -w .whl sam2==1.1.0
ls -la .whl
du -sh .whl
