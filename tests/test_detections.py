"""Detections in (tracker/io/detections.py): MOTChallenge, COCO and YOLO boxes seed tracked objects."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import compose_config
from PIL import Image

from tracker.apps import cli
from tracker.experiments.metrics import score_sequence, summarize
from tracker.experiments.synthetic import mot_rows, write_dataset
from tracker.io.detections import detection_plan, read_coco, read_mot, read_yolo
from tracker.io.prompts import PromptError


def test_readers_agree_on_the_same_boxes(tmp_path):
    (tmp_path / "d.txt").write_text("1,7,11,21,30,40,0.9,-1,-1,-1\n3,7,13,21,30,40,0.8,-1,-1,-1\n2,9,1,1,10,10,0.5\n")
    mot = read_mot(tmp_path / "d.txt")
    assert [(d.frame, d.track_id, d.box) for d in mot] == [
        (0, 7, (10, 20, 40, 60)),
        (2, 7, (12, 20, 42, 60)),
        (1, 9, (0, 0, 10, 10)),
    ]
    coco = {
        "images": [{"id": 5, "frame_index": 0}, {"id": 6, "frame_index": 2}],
        "annotations": [
            {"image_id": 5, "bbox": [10, 20, 30, 40], "track_id": 7},
            {"image_id": 6, "bbox": [12, 20, 30, 40], "track_id": 7},
        ],
    }
    (tmp_path / "d.json").write_text(json.dumps(coco))
    assert [(d.frame, d.track_id, d.box) for d in read_coco(tmp_path / "d.json")] == [
        (0, 7, (10, 20, 40, 60)),
        (2, 7, (12, 20, 42, 60)),
    ]
    yolo = tmp_path / "yolo"
    yolo.mkdir()
    (yolo / "frame_00000.txt").write_text("0 0.25 0.4 0.3 0.4\n")
    (yolo / "frame_00001.txt").write_text("0 0.26 0.4 0.3 0.4\n0 0.8 0.8 0.1 0.1\n")
    plan = detection_plan(read_yolo(yolo), 100, 100, normalised=True)
    # no ids: the first frame's box seeds object 1; later boxes are left to the engine to match to masks
    assert [(p.object_id, p.frame_index) for p in plan.spec.prompts] == [(1, 0)]
    assert plan.spec.prompts[0].box == pytest.approx((10, 20, 40, 60))
    assert sorted(plan.unmatched) == [1] and plan.unmatched[1][1] == pytest.approx((75, 75, 85, 85))
    # with ids: the first box seeds, later ones are the re-prompt boxes of that id
    mot_plan = detection_plan(mot, 100, 100)
    assert [p.object_id for p in mot_plan.spec.prompts] == [7, 9]
    assert mot_plan.later == {2: {7: (12, 20, 42, 60)}} and not mot_plan.unmatched
    # a detector's det.txt: id -1 is no identity, so boxes are matched to masks like YOLO's
    (tmp_path / "det.txt").write_text("1,-1,11,21,30,40,0.9,-1,-1,-1\n2,-1,1,1,10,10,0.5,-1,-1,-1\n")
    det = detection_plan(read_mot(tmp_path / "det.txt"), 100, 100)
    assert [(p.object_id, p.frame_index) for p in det.spec.prompts] == [(1, 0)]
    assert det.unmatched == {1: [(0, 0, 10, 10)]}


@pytest.mark.parametrize(
    "name, text, needle",
    [
        ("short.txt", "1,2,3\n", "columns"),
        ("nan.txt", "1,2,3,4,nan,6\n", "finite"),
        ("frame0.txt", "0,2,3,4,5,6\n", "frames from 1"),
        ("bad.json", "{", "not valid JSON"),
        ("notcoco.json", "[]", "not COCO"),
        ("nobox.json", '{"images": [{"id": 1}], "annotations": [{"image_id": 1}]}', "bbox"),
    ],
)
def test_malformed_detections_are_refused(tmp_path, name, text, needle):
    (tmp_path / name).write_text(text)
    reader = read_coco if name.endswith(".json") else read_mot
    with pytest.raises(PromptError, match=needle):
        reader(tmp_path / name)


def test_mot_boxes_seed_objects_that_are_tracked(tmp_path):
    """Jittered ground-truth boxes (MOTChallenge, 1-based) through the real CLI with the shipped toy model."""
    root = tmp_path / "data"
    names = write_dataset(root, 3, seed=5151, frames=24)
    scores = []
    for i, name in enumerate(names):
        ann = sorted((root / "Annotations" / "480p" / name).glob("*.png"))
        labs = [np.asarray(Image.open(p)) for p in ann]
        mot = tmp_path / f"{name}.txt"
        mot.write_text("\n".join(mot_rows(labs, jitter=2, seed=i)) + "\n")
        out = tmp_path / f"out_{name}"
        frames = root / "JPEGImages" / "480p" / name
        args = ["model=toy", "source=images", f"source.path={frames}", "prompts=detections", f"prompts.path={mot}"]
        cli.run(compose_config([*args, f"output_dir={out}", "progress=false", "sink.annotated=false"]))
        preds = [np.asarray(Image.open(out / "masks" / f"{t:05d}.png")) for t in range(len(labs))]
        scores += score_sequence(name, labs, preds)
    result = summarize(scores)
    print("J&F from jittered MOT boxes:", result)
    assert result["J&F-Mean"] >= 0.85, result
