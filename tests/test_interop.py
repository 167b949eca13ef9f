"""Outputs as the tools that consume them read them: pycocotools' COCO with the frames beside it,
Ultralytics' own dataset check and loader on yolo/, supervision's Detections; one overlap rule in all."""

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
    sinks = ["sink.coco=true", "sink.yolo=true", "sink.mots=true", "sink.frames=true"]
    cli.run(compose_config(["model=toy", *sinks, *overrides]))
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
            assert np.array_equal(m, png == a["track_id"])  # one overlap rule: COCO and the PNG agree
            assert a["category_id"] == (1 if a["track_id"] == 1 else 2) and a["area"] == int(m.sum())
            checked += 1
        # file_name resolves in frames/ beside instances.json (COCO's images folder), at the image's size
        image = cv2.imread(str(run / "frames" / img["file_name"]))
        assert image.shape == (img["height"], img["width"], 3)
    assert checked >= FRAMES
    assert sorted(p.name for p in (run / "frames").iterdir()) == [f"{t:05d}.jpg" for t in range(FRAMES)]


def test_the_objects_overlap_and_every_output_gives_a_pixel_to_one(run):
    """The demo's disc and square cross: the PNG, masks.jsonl and tracks_mots.txt hold one id per pixel."""
    from pycocotools import mask as mask_utils

    overlapped = 0
    for line in (run / "masks.jsonl").read_text().splitlines():
        rec = json.loads(line)
        png = _png(run, rec["frame"])
        ms = [
            mask_utils.decode(dict(o["rle"], counts=o["rle"]["counts"].encode())).astype(bool) for o in rec["objects"]
        ]
        assert not (np.sum(ms, axis=0) > 1).any()
        for o, m in zip(rec["objects"], ms):
            assert np.array_equal(m, png == o["id"])
        truth = demo_sequence(FRAMES, W, H, SEED).frame(rec["frame"])[1]
        overlapped += int((truth == 2).any() and (truth == 1).sum() < (truth != 0).sum())
    assert overlapped


def test_exclusive_gives_each_pixel_to_the_higher_score():
    masks = np.zeros((3, 4, 4), dtype=bool)
    masks[0, :2] = masks[1, 1:3] = masks[2, 1] = True  # row 1: all three; row 2: object 1 only
    fm = tracker.FrameMasks(0, (5, 6, 7), masks, np.array([0.9, 0.5, 0.9], dtype=np.float32), ("a", None, "b"))
    ex = fm.exclusive()
    assert ex.mask_of(7)[1].all() and not ex.mask_of(5)[1].any()  # a tie goes to the later object
    assert ex.mask_of(5)[0].all() and ex.mask_of(6)[2].all() and not ex.mask_of(6)[1].any()
    assert (ex.masks.sum(0) <= 1).all() and ex.labels == fm.labels and fm.masks[0, 1].all()  # a copy


ULTRALYTICS_CHECK = r"""
import json, sys
from ultralytics.data.utils import check_det_dataset
from ultralytics.data.dataset import YOLODataset

data = check_det_dataset(sys.argv[1])
ds = YOLODataset(img_path=data["train"], data=data, task="segment", imgsz=160, augment=False)
labels = ds.get_labels()
print(json.dumps({
    "names": data["names"], "nc": data["nc"], "train": data["train"], "val": data["val"],
    "images": len(ds.im_files),
    "labels": {Path(x["im_file"]).stem: [int(c) for c in x["cls"].ravel()] for x in labels},
    "segments": sum(len(x["segments"]) for x in labels),
    "sample": list(ds[0]["img"].shape),
}))
""".replace("import json, sys", "import json, sys\nfrom pathlib import Path")


def test_ultralytics_accepts_the_yolo_dataset(run, tmp_path):
    """Ultralytics' own check_det_dataset and YOLODataset(task="segment") on yolo/, moved elsewhere (the
    yaml has no path key: the dataset root is its folder). Ultralytics lives apart from the venv
    (scripts/install.sh puts it in .venv/ultralytics with --no-deps: its torchvision is a CUDA build)."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    home = Path(sys.prefix) / "ultralytics"
    assert (home / "ultralytics").is_dir(), f"{home} is missing: run scripts/install.sh"
    moved = tmp_path / "somewhere" / "yolo"
    shutil.copytree(run / "yolo", moved)
    env = {**os.environ, "PYTHONPATH": str(home), "YOLO_CONFIG_DIR": str(tmp_path / "cfg"), "YOLO_OFFLINE": "1"}
    res = subprocess.run(
        [sys.executable, "-c", ULTRALYTICS_CHECK, str(moved / "data.yaml")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got["names"] == {"0": "disc", "1": "object"} and got["nc"] == 2
    assert got["train"] == got["val"] == str(moved / "images")
    assert got["images"] == FRAMES and len(got["labels"]) == FRAMES
    expected = {}
    for t in range(FRAMES):
        rows = (run / "yolo" / "labels" / f"{t:05d}.txt").read_text().splitlines()
        expected[f"{t:05d}"] = [int(r.split()[0]) for r in rows]
    assert got["labels"] == expected and got["segments"] == sum(map(len, expected.values()))
    assert got["sample"][0] == 3


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
            parts = cv2.connectedComponents(m.astype(np.uint8))[0] - 1
            ious.append(((filled & m).sum() / (filled | m).sum(), parts))
    # One polygon per object (YOLO's format): a mask in one piece comes back whole; one in several parts (the
    # disc cut into slivers where the square covers it) is joined by zero-width bridges, which fill pixels
    # between its parts when rasterised.
    whole = [iou for iou, parts in ious if parts == 1]
    assert len(ious) >= FRAMES and len(whole) >= FRAMES // 2 and min(whole) >= 0.9, sorted(whole)[:3]
    assert np.median([iou for iou, _ in ious]) >= 0.95


def test_prompt_labels_reach_frame_masks_and_supervision(run):
    sv = pytest.importorskip("supervision")
    clip = run.parent / "clip.mp4"
    frame, masks = next(iter(tracker.track(clip, run.parent / "p.yaml", model="toy")))
    assert masks.labels == ("disc", None) and masks.label_of(1) == "disc"
    det = masks.to_supervision()
    assert isinstance(det, sv.Detections) and det.data["class_name"].tolist() == ["disc", "object"]
    assert det.class_id.tolist() == [0, 1] and det.tracker_id.tolist() == [1, 2]


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


def test_yolo_writes_every_non_empty_mask_and_utf8_labels(tmp_path):
    """A mask one pixel thick (a line, a point) still gets its label line (its pixel box), as COCO has it;
    an emoji label reads back from data.yaml as itself."""
    from tracker.io.sinks.yolo import YoloSink
    from tracker.records import Frame, FrameMasks

    masks = np.zeros((4, 20, 30), bool)
    masks[0, 5, 3:20] = True  # a horizontal line
    masks[1, 2:15, 25] = True  # a vertical line
    masks[2, 17, 9] = True  # one pixel
    masks[3, 8:12, 8:14] = True
    ids, labels = (1, 2, 3, 4), {1: "😀 car", 2: "Straße", 3: None, 4: "😀 car"}
    with YoloSink(tmp_path / "yolo", labels) as sink:
        sink.write(Frame(0, 0.0, np.zeros((20, 30, 3), np.uint8)), FrameMasks(0, ids, masks, np.ones(4, np.float32)))
    text = (tmp_path / "yolo" / "data.yaml").read_text(encoding="utf-8")
    assert "\\u" not in text
    names = yaml.safe_load(text)["names"]
    assert sorted(names.values()) == sorted(["😀 car", "Straße", "object"])
    rows = (tmp_path / "yolo" / "labels" / "00000.txt").read_text().splitlines()
    index = {v: k for k, v in names.items()}
    assert [int(r.split()[0]) for r in rows] == [index[x] for x in ("😀 car", "Straße", "object", "😀 car")]
    for row, m in zip(rows, masks):
        poly = np.array(row.split()[1:], dtype=float).reshape(-1, 2) * (30, 20)
        drawn = np.zeros((20, 30), np.uint8)
        cv2.fillPoly(drawn, [np.round(poly).astype(np.int32)], 1)
        assert drawn[m].all()
