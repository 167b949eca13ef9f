"""Experiments: metrics with hand-checked values, dataset runs, evaluation, sweeps and reports."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tracker.experiments.datasets import first_frame_prompts, load_sequences
from tracker.experiments.metrics import (
    ObjectScores,
    boundary_f,
    decay,
    iou,
    longterm,
    score_sequence,
    summarize,
    summarize_longterm,
)
from tracker.experiments.synthetic import write_dataset

# ---- metrics ----------------------------------------------------------------------------------------


def _square(x: int, y: int, s: int = 40, size: int = 100) -> np.ndarray:
    m = np.zeros((size, size), dtype=bool)
    m[y : y + s, x : x + s] = True
    return m


def test_identical_and_disjoint_masks():
    a = _square(20, 20)
    assert iou(a, a) == 1.0 and boundary_f(a, a) == 1.0
    b = _square(70, 70, 20)
    assert iou(a, b) == 0.0 and boundary_f(a, b) == 0.0


def test_one_pixel_shift_is_within_the_boundary_tolerance():
    a, b = _square(20, 20), _square(21, 20)
    # tolerance: ceil(0.008 * diag(100x100)) = 2 px
    assert boundary_f(a, b) == 1.0
    assert iou(a, b) == pytest.approx(39 * 40 / (41 * 40))


def test_empty_cases():
    a, empty = _square(20, 20), np.zeros((100, 100), dtype=bool)
    assert iou(a, empty) == 0.0 and boundary_f(a, empty) == 0.0
    assert iou(empty, empty) == 1.0 and boundary_f(empty, empty) == 1.0


def test_recall_and_decay_on_a_crafted_sequence():
    # J per frame of one object over 12 annotated frames; the first and last are excluded (DAVIS).
    # Frame t's prediction covers a fraction of the 10x10 object such that IoU = values[t].
    values = [9.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.2, 0.2, 0.2, 0.0, 9.0]
    gt, pred = [], []
    for v in values:
        g = np.zeros((50, 50), dtype=np.uint8)
        g[10:20, 10:20] = 1
        p = np.zeros_like(g)
        cols = int(round(10 * min(v, 1.0)))
        p[10:20, 10 : 10 + cols] = 1
        gt.append(g)
        pred.append(p)
    (obj,) = score_sequence("crafted", gt, pred)
    assert obj.j == pytest.approx((1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.2, 0.2, 0.2, 0.0))
    s = obj.stats()
    assert s["J-Mean"] == pytest.approx(0.51)
    assert s["J-Recall"] == pytest.approx(0.3)  # > 0.5: the three 1.0 frames
    # 4 bins as DAVIS splits 10 frames: [0:3], [2:6], [5:8], [7:10] -> 1.0 - mean(0.2, 0.2, 0.0)
    assert s["J-Decay"] == pytest.approx(1.0 - 0.4 / 3)
    assert decay([1.0] * 10) == 0.0


def _labels(spec: str, oid: int = 1, other: int = 0) -> list[np.ndarray]:
    """One label map per character: '#' the object at (10, 10), '.' absent, 'x' drawn elsewhere (no overlap),
    'o' the object's place taken by id ``other``, '_' nothing there."""
    out = []
    for c in spec:
        lab = np.zeros((100, 100), dtype=np.uint8)
        if c == "#":
            lab[_square(10, 10)] = oid
        elif c == "x":
            lab[_square(55, 55)] = oid
        elif c == "o":
            lab[_square(10, 10)] = other
        out.append(lab)
    return out


def test_longterm_counts_each_kind_of_frame():
    # frame 0 (the prompt) is not counted; then T T F M H N N
    gt = _labels("###" + "#" + "#" + "." + "..")
    pred = _labels("###" + "x" + "_" + "#" + "__")
    (t, f, m, h, n), reappear, switches = longterm(gt, pred, 1)
    assert (t, f, m, h, n) == (2, 1, 1, 1, 2)
    stats = ObjectScores("s", 1, (1.0,), (1.0,), (t, f, m, h, n)).stats()
    assert stats["Robustness"] == pytest.approx(2 / 4) and stats["NRE"] == pytest.approx(1 / 4)
    assert stats["DRE"] == pytest.approx(1 / 4) and np.isnan(stats["ADQ"])  # absent on 3 frames: no ADQ
    assert reappear == () and switches == 0


def test_adq_needs_more_than_ten_absent_frames():
    gt = _labels("#" + "." * 11)
    pred = _labels("#" + "_" * 8 + "###")
    counts, _, _ = longterm(gt, pred, 1)
    assert counts == (0, 0, 0, 3, 8)
    assert ObjectScores("s", 1, (), (), counts).stats()["ADQ"] == pytest.approx(8 / 11)


def test_reappearance_jf_covers_20_frames_after_an_absence_of_5():
    # absent 4 frames: not a re-appearance; absent 5: the next 20 visible frames count
    gt = _labels("##" + "...." + "##" + "....." + "#" * 25)
    pred = _labels("##" + "____" + "##" + "_____" + "_" * 3 + "#" * 22)
    _, reappear, _ = longterm(gt, pred, 1)
    assert len(reappear) == 20
    assert reappear[:3] == (0.0, 0.0, 0.0) and all(v == 1.0 for v in reappear[3:])


def test_id_switches_count_changes_of_the_covering_id():
    gt = [np.zeros((100, 100), np.uint8) for _ in range(6)]
    for g in gt:
        g[_square(10, 10)] = 1
    owners = [1, 1, 2, 2, 0, 1]  # covered by 1, then by 2 (a switch), nobody, then 1 again (a switch)
    pred = []
    for o in owners:
        lab = np.zeros((100, 100), np.uint8)
        if o:
            lab[_square(10, 10)] = o
        pred.append(lab)
    _, _, switches = longterm(gt, pred, 1)
    assert switches == 2
    objs = score_sequence("s", gt, pred)
    assert summarize_longterm(objs)["ID-Switches"] == 2.0


def test_summary_averages_objects_not_sequences():
    objs = [
        ObjectScores("a", 1, (1.0, 1.0), (1.0, 1.0)),
        ObjectScores("a", 2, (0.0, 0.0), (0.0, 0.0)),
        ObjectScores("b", 1, (1.0, 1.0), (0.5, 0.5)),
    ]
    s = summarize(objs)
    assert s["J-Mean"] == pytest.approx(2 / 3) and s["F-Mean"] == pytest.approx(0.5)
    assert s["J&F-Mean"] == pytest.approx((2 / 3 + 0.5) / 2)


# ---- datasets and runs ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    write_dataset(root, sequences=2, seed=3, frames=10, width=96, height=72, objects=(2, 3))
    return root


def test_synthetic_dataset_is_seeded_and_well_formed(synth, tmp_path):
    again = tmp_path / "again"
    write_dataset(again, sequences=2, seed=3, frames=10, width=96, height=72, objects=(2, 3))
    for f in (synth / "Annotations").rglob("*.png"):
        assert np.array_equal(np.asarray(Image.open(f)), np.asarray(Image.open(again / f.relative_to(synth))))
    seqs = load_sequences("davis", synth)
    assert [s.name for s in seqs] == ["synth003_000", "synth003_001"]
    lab = seqs[0].label_map(0)
    assert lab.shape == (72, 96) and len(set(np.unique(lab)) - {0}) >= 2
    prompts = list(first_frame_prompts(seqs[0], "click3"))
    assert all(len(p.points) == 3 and all(lab[int(y), int(x)] == p.object_id for x, y, _ in p.points) for p in prompts)
    assert load_sequences("davis", synth, shard=1, num_shards=2)[0].name == "synth003_001"


def _tracker(*args: str, cwd: Path | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "tracker.apps.cli",
            *(a for a in args if a.startswith("-")),
            "model.image_size=128",
            "model.random_weights=true",
            "progress=false",
            *(a for a in args if not a.startswith("-")),
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )


def _eval(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "from tracker.apps.cli import eval_main; eval_main()", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_dataset_run_writes_predictions_and_evaluates_itself(synth, tmp_path):
    out = tmp_path / "run"
    res = _tracker("dataset=davis", f"dataset.root={synth}", f"output_dir={out}", "dataset.annotated_video=true")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "J&F-Mean" in res.stdout and "ALL" in res.stdout
    results = json.loads((out / "results.json").read_text())
    assert set(results["sequences"]) == {"synth003_000", "synth003_001"}
    for seq in ("synth003_000", "synth003_001"):
        gt = sorted(p.name for p in (synth / "Annotations" / "480p" / seq).glob("*.png"))
        assert sorted(p.name for p in (out / "predictions" / seq).glob("*.png")) == gt
        assert Image.open(out / "predictions" / seq / gt[0]).mode == "P"
        assert (out / "videos" / f"{seq}.mp4").is_file()
    run = json.loads((out / "run.json").read_text())
    assert run["results"]["J&F-Mean"] == results["dataset"]["J&F-Mean"] and run["frames"] == 20
    # the evaluation command gives the same numbers from the folders alone
    ev = _eval(f"pred={out / 'predictions'}", f"gt={synth / 'Annotations' / '480p'}", f"output_dir={tmp_path / 'ev'}")
    assert ev.returncode == 0, ev.stderr
    again = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert again["dataset"] == pytest.approx(results["dataset"])


def test_perfect_predictions_score_one(synth, tmp_path):
    pred = tmp_path / "pred"
    shutil.copytree(synth / "Annotations" / "480p", pred)
    ev = _eval(f"pred={pred}", f"gt={synth / 'Annotations' / '480p'}", f"output_dir={tmp_path / 'ev'}")
    assert ev.returncode == 0, ev.stderr
    assert json.loads((tmp_path / "ev" / "results.json").read_text())["dataset"]["J&F-Mean"] == 1.0
    assert (tmp_path / "ev" / "results.csv").read_text().splitlines()[-1].startswith("ALL,1.00000")


def test_sav_layout_run(synth, tmp_path):
    """SA-V layout (per-object PNGs on every 4th frame), made from the synthetic DAVIS data."""
    root = tmp_path / "sav"
    for seq in ("synth003_000",):
        shutil.copytree(synth / "JPEGImages" / "480p" / seq, root / "JPEGImages_24fps" / seq)
        for png in sorted((synth / "Annotations" / "480p" / seq).glob("*.png"))[::4]:
            lab = np.asarray(Image.open(png))
            for oid in set(np.unique(lab).tolist()) - {0}:
                d = root / "Annotations_6fps" / seq / f"{oid:03d}"
                d.mkdir(parents=True, exist_ok=True)
                Image.fromarray(((lab == oid) * 255).astype(np.uint8)).save(d / png.name)
    out = tmp_path / "run"
    res = _tracker("dataset=sav", f"dataset.root={root}", f"output_dir={out}")
    assert res.returncode == 0, res.stderr[-2000:]
    preds = sorted(p.relative_to(out / "predictions") for p in (out / "predictions").rglob("*.png"))
    gts = sorted(p.relative_to(root / "Annotations_6fps") for p in (root / "Annotations_6fps").rglob("*.png"))
    assert preds == gts
    assert len(json.loads((out / "results.json").read_text())["objects"]) >= 2


def _one_line_error(res: subprocess.CompletedProcess, *needles: str) -> None:
    assert res.returncode == 2, res.stderr[-2000:]
    errs = [x for x in res.stderr.splitlines() if x.startswith("tracker: error:")]
    assert len(errs) == 1 and all(n in errs[0] for n in needles), res.stderr
    assert "Traceback" not in res.stderr


def test_bad_ground_truth_and_predictions(synth, tmp_path):
    gt = tmp_path / "gt"
    shutil.copytree(synth / "Annotations" / "480p", gt)
    pred = tmp_path / "pred"
    shutil.copytree(gt, pred)
    shutil.rmtree(pred / "synth003_001")
    _one_line_error(_eval(f"pred={pred}", f"gt={gt}"), "synth003_001", "does not exist")

    shutil.copytree(gt / "synth003_001", pred / "synth003_001")
    Image.new("P", (10, 10)).save(pred / "synth003_001" / "00003.png")
    _one_line_error(_eval(f"pred={pred}", f"gt={gt}"), "synth003_001", "00003", "10x10")

    (gt / "synth003_000" / "00004.png").unlink()
    _one_line_error(_eval(f"pred={pred}", f"gt={gt}"), "synth003_000", "00004.png")

    bad = tmp_path / "bad"
    shutil.copytree(synth, bad)
    Image.new("P", (20, 20)).save(bad / "Annotations" / "480p" / "synth003_000" / "00002.png")
    res = _tracker("dataset=davis", f"dataset.root={bad}", f"output_dir={tmp_path / 'o'}")
    _one_line_error(res, "synth003_000", "00002.png", "20x20")


# ---- sweeps -----------------------------------------------------------------------------------------


def _report(sweep: Path) -> None:
    rep = subprocess.run(
        [sys.executable, "-c", "from tracker.apps.cli import report_main; report_main()", str(sweep)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rep.returncode == 0, rep.stderr


def test_joblib_sweep_and_report(synth, tmp_path):
    sweep = tmp_path / "sweep"
    res = _tracker(
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        f"hydra.sweep.dir={sweep}",
        "dataset=davis",
        f"dataset.root={synth}",
        "dataset.prompt=mask,box",
        timeout=900,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert len(list(sweep.glob("*/results.json"))) == 2
    # threads=auto shares the cores between the two jobs that run at once (no oversubscription)
    from tracker.threads import usable_cores

    for run in sweep.glob("*/run.json"):
        assert json.loads(run.read_text())["threads"] <= max(1, usable_cores() // 2)
    _report(sweep)
    table = (sweep / "report.md").read_text()
    assert "dataset.prompt=mask" in table and "dataset.prompt=box" in table
    assert (sweep / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len((sweep / "report.csv").read_text().splitlines()) == 3


def test_submitit_local_shards_merge_in_the_report(synth, tmp_path):
    sweep = tmp_path / "sweep"
    res = _tracker(
        "-m",
        "hydra/launcher=submitit_local",
        "hydra.launcher.timeout_min=10",
        f"hydra.sweep.dir={sweep}",
        "dataset=davis",
        f"dataset.root={synth}",
        "dataset.num_shards=2",
        "dataset.shard=0,1",
        timeout=900,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert len(list(sweep.glob("*/results.json"))) == 2
    _report(sweep)
    rows = (sweep / "report.csv").read_text().splitlines()
    assert len(rows) == 2, rows  # two shards -> one merged configuration
    assert ",2,2," in rows[1]  # jobs = 2, sequences = 2


# ---- long-video families ------------------------------------------------------------------------------


def _presence(seq, oid: int) -> list[bool]:
    return [bool((seq.frame(t)[1] == oid).any()) for t in range(seq.frames)]


def _longest_absence(present: list[bool]) -> int:
    best = run = 0
    for v in present:
        run = 0 if v else run + 1
        best = max(best, run)
    return best


@pytest.mark.parametrize("seed", [0, 1])
def test_long_video_families_make_what_they_promise(seed):
    from tracker.experiments.hard import HardSequence

    look = HardSequence("lookalike", seed, 120)
    target = look.movers[0]
    present = _presence(look, 1)
    assert present[0] and _longest_absence(present) >= 20 and present[-1]
    # while the target is hidden, something of its colour and size is in view: the look-alike
    hidden = [t for t, p in enumerate(present) if not p]
    t = hidden[len(hidden) // 2]
    rgb, lab = look.frame(t)
    same = (rgb == np.array(target.color, dtype=np.uint8)).all(axis=2)
    assert same.sum() > 0.5 * np.pi * target.size**2 and not lab[same].any()  # background in the truth

    cross = HardSequence("crossing", seed, 120)
    a, b = cross.movers
    assert (a.color, a.shape, a.size) == (b.color, b.shape, b.size) and (a.tracked, b.tracked) == (1, 2)

    back = HardSequence("reentry", seed, 120)
    present = _presence(back, 1)
    assert _longest_absence(present) >= 20 and present[-1]
    gone = present.index(False)
    came = gone + present[gone:].index(True)
    xs = lambda t: np.nonzero(back.frame(t)[1] == 1)[1].mean()  # noqa: E731
    assert xs(gone - 1) > back.width / 2 > xs(came)  # left on the right, came back on the left

    occl = HardSequence("occlusion", seed, 300)
    assert _longest_absence(_presence(occl, 1)) >= 60

    mixed = HardSequence("mixed", seed, 150)
    assert sorted({m.tracked for m in mixed.movers} - {0}) == [1, 2, 3, 4]


def test_long_video_dataset_is_seeded_and_scores_long_term_figures(tmp_path):
    from tracker.experiments.hard import write_hard_dataset

    names = write_hard_dataset(tmp_path / "a", "reentry", sequences=1, seed=5, frames=100)
    write_hard_dataset(tmp_path / "b", "reentry", sequences=1, seed=5, frames=100)
    ann = f"Annotations/480p/{names[0]}/00050.png"
    assert (tmp_path / "a" / ann).read_bytes() == (tmp_path / "b" / ann).read_bytes()
    seqs = load_sequences("davis", tmp_path / "a")
    assert [s.name for s in seqs] == names and len(seqs[0].annotated) == 100
    # perfect predictions: robust, absences reported as absences, re-appearance J&F 1
    ev = _eval(
        f"pred={tmp_path / 'a' / 'Annotations' / '480p'}",
        f"gt={tmp_path / 'a' / 'Annotations' / '480p'}",
        f"output_dir={tmp_path / 'ev'}",
    )
    assert ev.returncode == 0, ev.stderr
    lt = json.loads((tmp_path / "ev" / "results.json").read_text())["longterm"]["dataset"]
    assert lt["Robustness"] == 1.0 and lt["ADQ"] == 1.0 and lt["J&F-Reappear"] == 1.0 and lt["ID-Switches"] == 0
    assert "J&F-Reappear" in ev.stdout


def test_long_video_benchmark_times_policies_in_lock_step_with_sam2(tmp_path):
    # the own-cost measurement of scripts/bench_long_video.py: every policy on the same 5-frame chunks
    root = tmp_path / "clip"
    write_dataset(root, 1, seed=77, frames=16, objects=(2, 2))
    script = Path(__file__).resolve().parents[1] / "scripts" / "bench_long_video.py"
    args = ["--child", "--mode", "timing", "--root", str(root), "--policy", "sam2,gated", "--ids", "1,1+2"]
    res = subprocess.run(
        [sys.executable, str(script), *args, "--reps", "1", "--chunk", "5"], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr[-2000:]
    rows = json.loads(res.stdout.strip().splitlines()[-1])["timing"]
    expected = [("sam2", [1]), ("gated", [1]), ("sam2", [1, 2]), ("gated", [1, 2])]
    assert [(r["policy"], r["ids"]) for r in rows] == expected
    for r in rows:
        # 16 frames: the first chunk (the prompt frame's) and the last, shorter one are left out
        assert r["chunks"] == 2 and 0 < r["heads_ms_per_frame"] < r["model_ms_per_frame"]
        assert ("overhead_ms" in r) == (r["policy"] == "gated")
    gated = rows[3]
    assert len(gated["overhead_ms"]) == 2 and gated["heads_overhead_ms"][1] >= 0  # mean and standard error


def test_failure_pictures_show_the_truth_and_each_policy(tmp_path):
    script = Path(__file__).resolve().parents[1] / "scripts" / "failure_pictures.py"
    out = tmp_path / "f.png"
    args = ["--family", "lookalike", "--frames", "100", "--policies", "sam2", "gated", "--at", "0", "99"]
    res = subprocess.run([sys.executable, str(script), *args, "--out", str(out)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    scores = json.loads(res.stdout.strip().splitlines()[-1])["scores"]
    assert set(scores) == {"sam2", "gated"} and all(0 <= s["J"] <= 1 for s in scores.values())
    im = Image.open(out)
    # 3 rows (truth, sam2, gated) x 2 frames of 160x120 at twice the size, labels on the left and on top
    assert im.size == (84 + 2 * (320 + 4), 18 + 3 * (240 + 4)) and im.mode == "P"
    truth = np.asarray(im.convert("RGB"))[18 : 18 + 240, 84 : 84 + 320]
    assert (truth == 255).all(axis=2).sum() > 20  # the white outline of the target's mask on frame 0
    bad = subprocess.run(
        [sys.executable, str(script), "--family", "lookalike", "--at", "150", "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "--at [150]: frames run from 0 to 149" in bad.stderr
