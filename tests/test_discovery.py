"""Objects found, not only given (tracker/discovery/): the automatic mask generator's filters and NMS, the
admission of new objects and their confirmation, id-less detections matched to tracked masks, re-prompts
from a box tracker, and whole runs (file and online) with the shipped toy model on synthetic sequences."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from helpers import compose_config, model_cfg
from omegaconf import OmegaConf
from PIL import Image

from tracker.apps import cli
from tracker.discovery import Candidate, Discovery, DiscoverySettings, GeneratorSettings, MaskGenerator
from tracker.discovery.generator import mask_iou_matrix, nms, point_grid, stability_score
from tracker.engine.sam import build_model
from tracker.experiments.discovery import read_tracks, score_discovery
from tracker.experiments.synthetic import SyntheticSequence, label_boxes, write_dataset
from tracker.masks import box_iou_matrix, mask_boxes

G = 16  # low-res grid of the hand-made masks below


@pytest.fixture(scope="module")
def toy():
    cfg = compose_config(["model=toy"])
    return build_model(OmegaConf.to_container(cfg.model.arch.model, resolve=True), cfg.model.checkpoint, "cpu")


def square(x0: int, y0: int, x1: int, y1: int, size: int = G) -> np.ndarray:
    m = np.zeros((size, size), dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


def logits_of(mask: np.ndarray, inside: float = 8.0, outside: float = -8.0) -> np.ndarray:
    return np.where(mask, inside, outside).astype(np.float32)


# ---- the generator's parts ------------------------------------------------------------------------


def test_point_grid_covers_the_frame_and_clusters_stay_near_their_centre():
    g = point_grid(4)
    assert g.shape == (16, 1, 2)
    assert sorted(set(np.round(g[:, 0, 0], 4))) == [0.125, 0.375, 0.625, 0.875]
    c = point_grid(4, points_per_prompt=3, radius=0.02)
    assert c.shape == (16, 3, 2)
    d = np.linalg.norm(c - g, axis=2)
    assert np.allclose(d, 0.02, atol=1e-6)
    assert len({tuple(p) for p in np.round(c[5], 5)}) == 3  # three distinct points


def test_prompts_on_tracked_objects_are_skipped(toy):
    gen = MaskGenerator(toy, GeneratorSettings(points_per_side=4, points_per_prompt=3))
    skip = np.zeros((8, 8), dtype=bool)
    skip[:4, :4] = True  # the top-left quarter: 4 of the 16 grid points
    kept = gen.prompts(skip)
    assert kept.shape == (12, 3, 2) and not ((kept.mean(1) < 0.5).all(1)).any()
    assert gen.prompts(None).shape == (16, 3, 2)


def test_stability_score_is_the_iou_of_the_two_thresholded_masks():
    x = torch.tensor([[[3.0, 0.5, -0.5, -3.0]]])  # > 1: one pixel; > -1: three pixels
    assert stability_score(x, 0.0, 1.0).item() == pytest.approx(1 / 3)
    crisp = torch.tensor([[[9.0, 9.0, -9.0, -9.0]]])
    assert stability_score(crisp, 0.0, 1.0).item() == 1.0
    assert stability_score(torch.full((1, 1, 4), -9.0), 0.0, 1.0).item() == 0.0  # empty, not NaN


def test_iou_matrices_and_greedy_nms():
    a = square(0, 0, 4, 4)
    b = square(2, 0, 6, 4)  # half of a
    c = square(10, 10, 14, 14)
    masks = np.stack([a, b, c])
    miou = mask_iou_matrix(masks, masks)
    assert miou[0, 1] == pytest.approx(8 / 24) and miou[0, 2] == 0 and np.allclose(np.diag(miou), 1)
    boxes = mask_boxes(masks)
    assert boxes.tolist() == [[0, 0, 4, 4], [2, 0, 6, 4], [10, 10, 14, 14]]
    assert box_iou_matrix(boxes, boxes)[0, 1] == pytest.approx(8 / 24)
    assert mask_boxes(np.zeros((1, G, G), dtype=bool)).tolist() == [[0, 0, 0, 0]]
    scores = np.array([0.8, 0.9, 0.7])
    assert nms(miou, scores, 0.3) == [1, 2]  # b beats a (0.33 > 0.3), c overlaps nothing
    assert nms(miou, scores, 0.5) == [1, 0, 2]  # 0.33 is allowed at 0.5


def test_generator_filters_each_threshold(toy):
    """Hand-made decoder outputs through MaskGenerator.filter: each mask fails exactly one filter."""
    size = toy.image_size // 4
    good = square(4, 4, 20, 20, size)
    masks = {
        "good": logits_of(good),
        "low_iou": logits_of(square(30, 30, 46, 46, size)),
        "unstable": np.where(square(40, 4, 56, 20, size), 0.5, -0.5).astype(np.float32),
        "speck": logits_of(square(60, 60, 61, 61, size)),
        "background": logits_of(~square(0, 0, 2, 2, size)),
        "duplicate": logits_of(square(4, 4, 19, 20, size)),  # box IoU 0.94 with "good", lower score
        "other": logits_of(square(30, 4, 38, 12, size)),
    }
    pred = {"good": 0.95, "low_iou": 0.5, "unstable": 0.95, "speck": 0.95, "background": 0.95}
    pred |= {"duplicate": 0.9, "other": 0.85}
    names = list(masks)
    gen = MaskGenerator(toy, GeneratorSettings(pred_iou_thresh=0.8, stability_score_thresh=0.95, nms_iou=0.7))
    logits = torch.from_numpy(np.stack([masks[n] for n in names]))
    kept = gen.filter(logits, torch.tensor([pred[n] for n in names]))
    found = [names[[np.array_equal(c.binary, masks[n] > 0) for n in names].index(True)] for c in kept]
    assert found == ["good", "other"]  # best predicted IoU first
    assert kept[0].box == (4, 4, 20, 20) and kept[0].pred_iou == pytest.approx(0.95) and kept[0].stability == 1.0
    # mask NMS sees the same duplicate; a looser threshold keeps it
    assert (
        len(MaskGenerator(toy, GeneratorSettings(nms="mask")).filter(logits, torch.tensor([pred[n] for n in names])))
        == 2
    )
    assert (
        len(MaskGenerator(toy, GeneratorSettings(nms_iou=0.99)).filter(logits, torch.tensor([pred[n] for n in names])))
        == 3
    )


@pytest.mark.parametrize(
    "key, value",
    [("points_per_side", 0), ("nms", "soft"), ("nms_iou", 0.0), ("max_area", 0.0), ("cluster_radius", 0.6)],
)
def test_generator_settings_name_the_bad_value(key, value):
    with pytest.raises(ValueError, match=key):
        GeneratorSettings(**{key: value})


def test_generator_finds_the_objects_of_a_synthetic_frame(toy):
    """The real toy model on fresh synthetic frames: most objects get a mask of IoU > 0.5 (large ones often
    get a part), and on average at most one mask per frame covers no object."""
    cfg = compose_config(["experiment=discover"])
    gen = MaskGenerator(toy, GeneratorSettings(**OmegaConf.to_container(cfg.generator, resolve=True)))
    assert gen.settings.points_per_prompt == 3 and not gen.multimask  # the toy needs three points
    found = total = spurious = 0
    seeds = range(51, 59)
    for seed in seeds:
        rgb, lab = SyntheticSequence(seed, 2, 160, 120, 3).frame(0)
        cands = gen.generate(toy.image_features(toy.preprocess(rgb)))
        masks = [c.video_mask((120, 160)) for c in cands]
        for k in range(1, 4):
            gt = lab == k
            if gt.sum() < 50:  # hidden behind another object
                continue
            total += 1
            found += max((m & gt).sum() / (m | gt).sum() for m in masks) > 0.5
        spurious += sum(max(((lab == k) & m).sum() / ((lab == k) | m).sum() for k in range(1, 4)) < 0.3 for m in masks)
    assert found / total >= 0.75, (found, total)
    assert spurious <= len(seeds), spurious


def test_generator_on_sam2_answers_one_point_with_three_masks():
    """SAM 2.1 tiny's real modules (random weights, 128 px): a single point is answered with the three
    multimask outputs, all of them candidates, as SAM 2's own generator does."""
    model = build_model(model_cfg(128)["arch"]["model"], seed=0)
    gen = MaskGenerator(model, GeneratorSettings(points_per_side=4, points_per_batch=5))
    assert gen.multimask
    feats = model.image_features(model.preprocess(np.zeros((96, 128, 3), np.uint8)))
    logits, pred_iou = gen.decode(feats)
    assert logits.shape == (16 * 3, 32, 32) and pred_iou.shape == (16 * 3,)
    assert torch.isfinite(logits).all() and torch.isfinite(pred_iou).all()
    three = MaskGenerator(model, GeneratorSettings(points_per_side=4, points_per_prompt=3))
    assert (
        not three.multimask
        and three.decode(model.image_features(model.preprocess(np.zeros((96, 128, 3), np.uint8))))[0].shape[0] == 16
    )


# ---- admission and confirmation -------------------------------------------------------------------


def discovery(**kw) -> Discovery:
    settings = DiscoverySettings(**{"confirm": 3, **kw.pop("settings", {})})
    return Discovery(settings, (G * 4, G * 4), next_id=kw.pop("next_id", 5), **kw)


class Found:
    """A generator that returns fixed candidates (its interface: ``generate(feats)``)."""

    def __init__(self, masks: list[np.ndarray]) -> None:
        self.masks = masks

    def generate(self, feats, skip=None) -> list[Candidate]:
        return [Candidate(logits_of(m), tuple(mask_boxes(m[None])[0]), 0.9, 1.0) for m in self.masks]


def test_a_candidate_joins_only_where_nothing_is_tracked():
    tracked = np.stack([square(0, 0, 8, 8)])
    candidates = [
        square(1, 1, 8, 8),  # the tracked object again (IoU 0.77)
        square(2, 2, 4, 4),  # a part of it: IoU 0.06 but wholly covered
        square(10, 10, 14, 14),  # new
        square(10, 10, 14, 15),  # the new one again: not admitted twice
        square(6, 10, 9, 14),  # new, beside it
    ]
    d = discovery(generator=Found(candidates), settings={"every": 4})
    listed = discovery(generator=Found(candidates), settings={"frames": (3, 10)}, seed_frame=1)
    assert [t for t in range(12) if listed.wants(t)] == [1, 3, 10]  # prompts=auto's prompts.frames
    prompts = d.admit(4, None, tracked)
    assert [p.object_id for p in prompts] == [5, 6]
    assert [p.frame_index for p in prompts] == [4, 4]
    assert prompts[0].mask.shape == (G * 4, G * 4) and prompts[0].mask[10 * 4 + 2, 10 * 4 + 2]
    # max_covered=1 lets the part in (its IoU is below new_iou)
    assert (
        len(
            discovery(generator=Found(candidates[1:2]), settings={"every": 4, "max_covered": 1.0}).admit(
                4, None, tracked
            )
        )
        == 1
    )


def test_the_generator_runs_every_k_frames_processed():
    none = np.zeros((0, G, G), dtype=bool)
    d = discovery(generator=Found([]), settings={"every": 4})
    looked = []
    for t in [0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13]:  # frame 7 dropped (real time)
        if d.wants(t):
            looked.append(t)
            d.admit(t, None, none)
    assert looked == [0, 4, 8, 12]
    d = discovery(generator=Found([]), settings={"every": 4})
    looked = []
    for t in [0, 1, 2, 3, 5, 6, 7, 8, 9]:  # frame 4 dropped: the next one is looked at instead
        if d.wants(t):
            looked.append(t)
            d.admit(t, None, none)
    assert looked == [0, 5, 9]


def test_idless_boxes_join_where_no_tracked_mask_matches():
    tracked = np.stack([square(0, 0, 8, 8)])  # video box (0, 0, 32, 32)
    boxes = [(1.0, 0.0, 33.0, 30.0), (40.0, 40.0, 60.0, 60.0), (41.0, 40.0, 60.0, 61.0)]
    d = discovery(detections={7: boxes})
    assert d.wants(7) and not d.wants(8)
    prompts = d.admit(7, None, tracked)
    assert [(p.object_id, p.box) for p in prompts] == [(5, (40.0, 40.0, 60.0, 60.0))]
    assert not d.wants(7)  # each frame's boxes are used once


def test_confirmation_keeps_what_persists_and_drops_the_rest():
    d = discovery(generator=Found([square(10, 10, 14, 14)]), settings={"every": 2}, seed_frame=0)
    assert [p.object_id for p in d.admit(0, None, np.zeros((0, G, G), bool))] == [5]
    assert d.pending() == set() and d.joined[0].kept  # found on the seed frame: the run's own
    new = d.admit(2, None, np.zeros((0, G, G), bool))[0].object_id
    late = d.admit(4, None, np.zeros((0, G, G), bool))[0].object_id
    assert d.pending() == {new, late} and not d.decided(2) and d.decided(1)
    assert d.observe(3, new, True) and d.observe(4, new, True)
    assert d.observe(5, late, False) is False  # gone on the first frame after it joined: dropped
    assert d.observe(5, new, True) and d.pending() == set() and d.decided(6)
    late2 = d.admit(6, None, np.zeros((0, G, G), bool))[0].object_id
    d.observe(7, late2, True)
    d.finish()  # the video ended before it had three frames
    summary = d.summary()
    assert [(j["id"], j["frame"], j["kept"]) for j in summary["joined"]] == [
        (5, 0, True),
        (new, 2, True),
        (late, 4, False),
        (late2, 6, False),
    ]
    assert summary["dropped"] == 2 and d.dropped == {late, late2}


def test_discovery_settings_name_the_bad_value():
    with pytest.raises(ValueError, match="discover.new_iou"):
        DiscoverySettings(new_iou=0)
    with pytest.raises(ValueError, match="discover.every"):
        DiscoverySettings(every=-2)


# ---- whole runs ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    names = write_dataset(root, 2, seed=6161, frames=24)
    labs = {
        n: [np.asarray(Image.open(p)) for p in sorted((root / "Annotations" / "480p" / n).glob("*.png"))] for n in names
    }
    return root, names, labs


def _run(root, name, out, *args):
    frames = root / "JPEGImages" / "480p" / name
    cfg = compose_config(["source=images", f"source.path={frames}", f"output_dir={out}", "progress=false", *args])
    return cli.run(cfg)


def test_auto_run_finds_tracks_and_lists_the_objects(synth, tmp_path):
    """prompts=auto discover.every=4 through the real CLI: the objects are found and tracked, every output
    names the same ids, and run.json lists them with the frame they joined on."""
    root, names, labs = synth
    recovered = objects = spurious = 0
    for name in names:
        out = tmp_path / name
        record = _run(root, name, out, "experiment=discover", "sink.mot=true", "sink.coco=true")
        n, tracks = read_tracks(out / "masks.jsonl")
        assert n == 24
        s = score_discovery(labs[name], tracks)
        recovered, objects, spurious = recovered + s["recovered"], objects + s["objects"], spurious + s["spurious"]
        joined = record["discovery"]["joined"]
        kept = {j["id"] for j in joined if j["kept"]}
        assert set(map(int, record["objects"])) == kept == set(tracks)
        assert {j["frame"] for j in joined} <= {0, 4, 8, 12, 16, 20}
        for j in joined:  # an object is listed from the frame it joined on, not before
            if j["kept"]:
                assert min(tracks[j["id"]]) == j["frame"]
        with open(out / "tracks.csv") as f:
            assert {int(r[1]) for r in csv.reader(f)} <= kept
        coco = json.loads((out / "instances.json").read_text())
        assert {a["track_id"] for a in coco["annotations"]} <= kept
        pngs = {int(v) for t in range(24) for v in np.unique(np.asarray(Image.open(out / "masks" / f"{t:05d}.png")))}
        assert pngs - {0} <= kept
    assert recovered / objects >= 0.7 and spurious <= len(names), (recovered, objects, spurious)


def test_an_unconfirmed_object_is_in_no_output(synth, tmp_path):
    """Id-less boxes (YOLO): objects 1 and 2 seed on frame 0, object 3's first box comes on frame 18. With
    discover.confirm=10 it cannot be confirmed before the end and is dropped from every output; with
    confirm=3 it is kept, from frame 18 on."""
    root, names, labs = synth
    name = next(n for n in names if all((lab == 3).any() for lab in labs[n][16:]))
    yolo = tmp_path / "yolo"
    yolo.mkdir()
    for t, lab in enumerate(labs[name]):
        rows = []
        for oid, (x0, y0, x1, y1) in label_boxes(lab).items():
            if oid < 3 and t == 0 or oid == 3 and t == 18:
                rows.append(f"0 {(x0 + x1) / 320} {(y0 + y1) / 240} {(x1 - x0) / 160} {(y1 - y0) / 120}")
        (yolo / f"{t:05d}.txt").write_text("\n".join(rows) + "\n")
    args = ["model=toy", "prompts=detections", "prompts.format=yolo", f"prompts.path={yolo}", "sink.mots=true"]
    dropped = _run(root, name, tmp_path / "dropped", *args, "discover.confirm=10")
    assert dropped["discovery"]["joined"] == [{"id": 3, "frame": 18, "by": "detection", "kept": False}]
    assert set(dropped["objects"]) == {"1", "2"}
    _, tracks = read_tracks(tmp_path / "dropped" / "masks.jsonl")
    assert set(tracks) == {1, 2}
    mots = (tmp_path / "dropped" / "tracks_mots.txt").read_text().splitlines()
    assert {int(r.split()[1]) for r in mots} == {1, 2}
    kept = _run(root, name, tmp_path / "kept", *args, "discover.confirm=3")
    assert kept["discovery"]["joined"] == [{"id": 3, "frame": 18, "by": "detection", "kept": True}]
    _, tracks = read_tracks(tmp_path / "kept" / "masks.jsonl")
    assert min(tracks[3]) == 18
    gt = labs[name][23] == 3
    assert (tracks[3][23] & gt).sum() / (tracks[3][23] | gt).sum() > 0.7


def test_a_drifting_mask_is_reprompted_by_its_tracks_box(synth, tmp_path):
    """A MOT track whose first box is on the wrong object: its later boxes re-prompt it onto its own."""
    root, names, labs = synth
    name = names[0]
    rows = []
    for t, lab in enumerate(labs[name]):
        boxes = label_boxes(lab)
        x0, y0, x1, y1 = boxes[2] if t == 0 else boxes[1]  # frame 0: object 2's box
        rows.append(f"{t + 1},1,{x0 + 1},{y0 + 1},{x1 - x0},{y1 - y0},1,-1,-1,-1")
    mot = tmp_path / "mot.txt"
    mot.write_text("\n".join(rows) + "\n")
    args = ["model=toy", "prompts=detections", f"prompts.path={mot}"]
    fixed = _run(root, name, tmp_path / "fixed", *args)
    assert fixed["reprompts"]["by_object"]["1"] >= 1
    stuck = _run(root, name, tmp_path / "stuck", *args, "prompts.reprompt_iou=0")
    assert "reprompts" not in stuck

    def last_iou(out):
        _, tracks = read_tracks(out / "masks.jsonl")
        gt = labs[name][23] == 1
        return (tracks[1][23] & gt).sum() / max((tracks[1][23] | gt).sum(), 1)

    assert last_iou(tmp_path / "fixed") > 0.8 and last_iou(tmp_path / "stuck") < 0.3


def test_online_run_discovers_too(synth, tmp_path):
    """mode=online over the frames: the same generator seeds and admits objects as they come."""
    root, names, labs = synth
    name = names[1]
    record = _run(root, name, tmp_path / "online", "experiment=discover", "mode=online")
    assert record["state"] == "complete" and record["discovery"]["kept"] >= 2
    _, tracks = read_tracks(tmp_path / "online" / "masks.jsonl")
    assert set(tracks) == {int(k) for k in record["objects"]}
    s = score_discovery(labs[name], tracks)
    assert s["recovered"] >= s["objects"] - 1 and s["spurious"] <= 1, s


def test_frames_held_back_are_released_when_a_run_is_cut_short(synth, toy):
    """A signal stops an online run while a new object is pending: the frames held back for it come out
    of release_held (what the live pipeline writes then), without that object."""
    from tracker.engine.propagation import Propagator
    from tracker.engine.types import Passes
    from tracker.io.source import open_source
    from tracker.records import Prompt

    root, names, labs = synth
    name = names[0]
    src = open_source("images", root / "JPEGImages" / "480p" / name)

    def frames():
        for f in src.frames():
            if f.index == 10:
                raise KeyboardInterrupt  # SIGINT, as the CLI raises it in the main thread
            yield f

    boxes = [label_boxes(lab) for lab in labs[name]]
    d = Discovery(DiscoverySettings(confirm=30), (120, 160), next_id=2, detections={2: [boxes[2][2]]})
    prop = Propagator(toy, passes=Passes(backward=False, prefetch=0), discovery=d)
    got = []
    with pytest.raises(KeyboardInterrupt):
        for item in prop.run_online(frames(), [Prompt(1, 0, box=boxes[0][1])]):
            got.append(item)
    assert [f.index for f, _ in got] == [0, 1]  # object 2 joined on frame 2: held from there
    rest = list(prop.release_held())
    assert [f.index for f, _ in rest] == list(range(2, 10))
    assert d.joined[0].object_id == 2 and d.joined[0].kept is False
    assert all(m.object_ids == (1,) for _, m in got + rest)
    assert list(prop.release_held()) == []
