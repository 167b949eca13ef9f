"""Outputs as the tools that consume them read them: pycocotools' COCO, Ultralytics' YOLO polygons,
supervision's Detections."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import yaml
from helpers import compose_config
from PIL import Image

import tracker
from tracker.apps import cli
from tracker.experiments.demo import demo_sequence, write_demo_clip

FRAMES, W, H, SEED = 16, 160, 120, 2


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("interop")
    clip = write_demo_clip(tmp / "clip.mp4", FRAMES, W, H, seed=SEED)
    first = demo_sequence(FRAMES, W, H, SEED).frame(0)[1]
    objects = []
    for oid, label in ((1, "disc"), (2, None)):
        ys, xs = np.nonzero(first == oid)
        box = [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]
        objects.append({"id": oid, "label": label, "prompts": [{"frame": 0, "box": box}]})
    (tmp / "p.yaml").write_text(yaml.safe_dump({"objects": objects}))
    out = tmp / "out"
    overrides = [f"source.path={clip}", f"prompts.path={tmp / 'p.yaml'}", f"output_dir={out}", "progress=false"]
    cli.run(compose_config(["model=toy", "sink.coco=true", "sink.yolo=true", "sink.mots=true", *overrides]))
    return out


def _png(out, t: int) -> np.ndarray:
    return np.asarray(Image.open(out / "masks" / f"{t:05d}.png"))


def test_coco_instances_load_in_pycocotools(run):
    from pycocotools.coco import COCO

    coco = COCO(str(run / "instances.json"))
    data = json.loads((run / "instances.json").read_text())
    assert data["videos"] == [{"id": 1, "name": "clip.mp4", "width": W, "height": H, "length": FRAMES}]
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == ["disc", "object"]
    assert sorted(coco.getImgIds()) == list(range(1, FRAMES + 1))
    checked = 0
    for img in coco.loadImgs(coco.getImgIds()):
        png = _png(run, img["frame_index"])
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[img["id"]]))
        assert {a["track_id"] for a in anns} >= set(np.unique(png).tolist()) - {0}
        for a in anns:
            m = coco.annToMask(a).astype(bool)
            # the PNG shows the higher-scored object where two overlap: compare where it shows this one,
            # and nowhere may this mask cover the PNG's background
            assert np.all(m[png == a["track_id"]]) and not m[png == 0].any()
            assert a["category_id"] == (1 if a["track_id"] == 1 else 2) and a["area"] == int(m.sum())
            checked += 1
    assert checked >= FRAMES


def test_yolo_polygons_rasterise_back_to_the_masks(run):
    names = yaml.safe_load((run / "yolo" / "data.yaml").read_text())["names"]
    assert names == {0: "disc", 1: "object"}
    ious = []
    jsonl = [json.loads(x) for x in (run / "masks.jsonl").read_text().splitlines()]
    for line in jsonl:
        t = line["frame"]
        rows = (run / "yolo" / "labels" / f"{t:05d}.txt").read_text().splitlines()
        by_class = {int(r.split()[0]): np.array(r.split()[1:], dtype=float).reshape(-1, 2) for r in rows}
        for obj in line["objects"]:
            if obj["area"] < 50:
                continue
            from pycocotools import mask as mask_utils

            m = mask_utils.decode(dict(obj["rle"], counts=obj["rle"]["counts"].encode())).astype(bool)
            poly = by_class[0 if obj["id"] == 1 else 1] * [W, H]
            filled = np.zeros((H, W), np.uint8)
            cv2.fillPoly(filled, [np.round(poly).astype(np.int32)], 1)
            filled = filled.astype(bool)
            ious.append((filled & m).sum() / (filled | m).sum())
    assert len(ious) >= FRAMES and min(ious) >= 0.9, min(ious)


def test_frame_masks_to_supervision(run):
    sv = pytest.importorskip("supervision")
    masks = np.zeros((3, H, W), dtype=bool)
    masks[0, 10:20, 30:50] = True
    masks[2, 50:60, 5:9] = True  # object 9: unlabeled; object 4 has an empty mask
    fm = tracker.FrameMasks(0, (2, 4, 9), masks, np.array([0.9, 0.1, 0.7], dtype=np.float32))
    det = fm.to_supervision({2: "car", 4: "car"})
    assert isinstance(det, sv.Detections) and len(det) == 2
    assert det.tracker_id.tolist() == [2, 9] and det.data["class_name"].tolist() == ["car", "object"]
    assert det.class_id.tolist() == [0, 1]
    assert det.xyxy.tolist() == [[30, 10, 50, 20], [5, 50, 9, 60]]
    assert np.array_equal(det.mask, masks[[0, 2]]) and det.confidence.tolist() == pytest.approx([0.9, 0.7])
    annotated = sv.MaskAnnotator().annotate(np.zeros((H, W, 3), np.uint8), det)
    assert annotated[15, 40].any() and not annotated[0, 0].any()


def test_mots_rows_decode_to_the_masks(run):
    from pycocotools import mask as mask_utils

    rows = [line.split() for line in (run / "tracks_mots.txt").read_text().splitlines()]
    jsonl = {json.loads(x)["frame"]: json.loads(x) for x in (run / "masks.jsonl").read_text().splitlines()}
    assert (run / "tracks_labels.txt").read_text() == "disc\nobject\n"
    seen = 0
    for frame, oid, cls, h, w, counts in rows:
        m = mask_utils.decode({"size": [int(h), int(w)], "counts": counts.encode()}).astype(bool)
        obj = next(o for o in jsonl[int(frame) - 1]["objects"] if o["id"] == int(oid))  # MOTS frames from 1
        ref = mask_utils.decode(dict(obj["rle"], counts=obj["rle"]["counts"].encode())).astype(bool)
        assert np.array_equal(m, ref) and int(cls) == (1 if int(oid) == 1 else 2) and (int(h), int(w)) == (H, W)
        seen += 1
    assert seen == sum(1 for line in jsonl.values() for o in line["objects"] if o["area"])
