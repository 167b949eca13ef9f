#!/usr/bin/env bash
# Reproduce tracker/weights/toy.pt (see tracker/weights/MODEL_CARD.md): synthetic data, four training stages,
# export, held-out evaluation. About 3.5 hours on a 2-core CPU; add model.device=cuda on a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
TRAIN=.venv/bin/tracker-train

# Data: train seeds 2000 (1200 x 16 frames), 2002 (2000 x 16) and 2004 (600 x 48), validation seeds 9001
# (20 x 24) and 9002 (8 x 96), held-out test seeds 31337 (20 x 24) and 777 (10 x 96), never trained on.
$PY scripts/make_synthetic_dataset.py data/train2 --sequences 1200 --seed 2000 --frames 16 --split train
$PY scripts/make_synthetic_dataset.py data/train3 --sequences 2000 --seed 2002 --frames 16 --split train
$PY scripts/make_synthetic_dataset.py data/val --sequences 20 --seed 9001 --frames 24 --split val
$PY scripts/make_synthetic_dataset.py data/test --sequences 20 --seed 31337 --frames 24 --split val
$PY scripts/make_synthetic_dataset.py data/train4 --sequences 600 --seed 2004 --frames 48 --split train
$PY scripts/make_synthetic_dataset.py data/val_long --sequences 8 --seed 9002 --frames 96 --split val
$PY scripts/make_synthetic_dataset.py data/test_long --sequences 10 --seed 777 --frames 96 --split val

# Stages A and B run the model at 128 px (configs/model/toy.yaml says 256, the size of stage C).
# Stage A (configs/train/toy_image.yaml): single frames with box / click prompts, from scratch.
$TRAIN model=toy model.image_size=128 model.checkpoint=null train=toy_image train.data_root=data/train2 output_dir=runs/stageA progress=false

# Stage B (configs/train/toy_video.yaml): 8-frame clips tracked through SAM 2's memory, from stage A.
$TRAIN model=toy model.image_size=128 model.checkpoint=runs/stageA/last.pt train=toy_video train.stop_after=7750 \
  train.data_root=data/train2 train.val_root=data/val output_dir=runs/stageB progress=false

$PY scripts/export_weights.py runs/stageB/last.pt runs/stageB/toy128.pt

# Stage C (configs/train/toy_hires.yaml): the same clips at 256 px on fresh data, from stage B's fp16 export.
$TRAIN model=toy model.checkpoint=runs/stageB/toy128.pt train=toy_hires \
  train.data_root=data/train3 train.val_root=data/val output_dir=runs/stageC progress=false

$PY scripts/export_weights.py runs/stageC/last.pt runs/stageC/toy256.pt

# Stage D (configs/train/toy_long.yaml): 24-frame clips of 48-frame sequences, validated on 96 frames.
$TRAIN model=toy model.checkpoint=runs/stageC/toy256.pt train=toy_long \
  train.data_root=data/train4 train.val_root=data/val_long output_dir=runs/stageD progress=false

$PY scripts/export_weights.py runs/stageD/last.pt tracker/weights/toy.pt
for prompt in mask box; do
  .venv/bin/tracker model=toy dataset=davis dataset.root=data/test dataset.prompt=$prompt \
    output_dir=runs/test_$prompt progress=false
done
.venv/bin/tracker model=toy dataset=davis dataset.root=data/test_long output_dir=runs/test_long progress=false
