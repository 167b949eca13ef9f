"""Plug-ins from a folder of their own: a sink with one option, a source kind and a memory policy, each one
module (+ one yaml), loaded by ``plugins=[...]`` with their yaml from ``--config-dir``, run by the real
command. The command runs in a child process: a plug-in registers into this process's registries for good."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import ground_truth, moving_shapes

SINK = '''
"""areas.csv: each object's mask area, every ``sink.areas_every``-th frame."""
from dataclasses import dataclass

from tracker.io.sinks.base import Sink, register
from tracker.settings import integer


@dataclass(frozen=True)
class AreasSettings:
    areas_every: int = 1

    def __post_init__(self) -> None:
        integer("sink.areas_every", self.areas_every, 1, 1000, example=5)


class AreasSink(Sink):
    def __init__(self, target, every):
        super().__init__(target)
        self.every = every

    def open(self):
        self.f = open(self.partial, "w")
        self.f.write("frame,id,area\\n")

    def write(self, frame, masks):
        if frame.index % self.every == 0:
            for oid, m in zip(masks.object_ids, masks.masks):
                self.f.write(f"{frame.index},{oid},{int(m.sum())}\\n")
        self.frames_written += 1

    def close(self, ok):
        self.f.close()


register(
    "areas",
    ("areas.csv",),
    lambda c: AreasSink(c.folder / "areas.csv", c.settings["areas"].areas_every),
    resumable=False,
    live=False,
    settings=AreasSettings,
)
'''

SOURCE = '''
"""source=npy: frames of a .npy array uint8 [N, H, W, 3], memory-mapped and read one at a time."""
from dataclasses import dataclass

import numpy as np

from tracker.io.source import SourceError, SourceKind, register_source
from tracker.records import Frame, VideoInfo
from tracker.settings import number


@dataclass(frozen=True)
class NpySettings:
    fps: float = 10.0

    def __post_init__(self) -> None:
        number("source.fps", self.fps, 0, 1000, open_lo=True)


class NpySource:
    def __init__(self, path, fps=10.0):
        try:
            self.array = np.load(path, mmap_mode="r")
        except (OSError, ValueError) as e:
            raise SourceError(f"source.path {str(path)!r} is not a .npy file ({e})") from None
        n, h, w, _ = self.array.shape
        self.fps = fps
        self.info = VideoInfo(width=w, height=h, fps=fps, num_frames=n)

    def frames(self, start=0, stop=None):
        stop = len(self.array) if stop is None else min(stop, len(self.array))
        for i in range(start, stop):
            yield Frame(index=i, time=i / self.fps, rgb=np.ascontiguousarray(self.array[i]))


register_source(SourceKind("npy", NpySource, audio=False, settings=NpySettings))
'''

POLICY = '''
"""memory=recent: SAM 2 reads only the last ``memory.keep`` tracked frames (and its prompt frames)."""
import logging
from dataclasses import dataclass
from typing import ClassVar

from tracker.engine.memory import Sam2Memory, register
from tracker.engine.policies.base import PolicySettings

log = logging.getLogger("tracker")


@dataclass(frozen=True)
class RecentSettings(PolicySettings):
    policy: ClassVar[str] = "recent"
    keep: int = 3

    def __post_init__(self) -> None:
        self.check("keep", 1, 6, int)


@register
class RecentMemory(Sam2Memory):
    name = "recent"
    Settings = RecentSettings
    reads: ClassVar[int] = 0  # calls of read() in this process (the studio test asks)

    def __init__(self, settings=None):
        self.settings = settings if settings is not None else RecentSettings()

    def bind(self, geometry):
        super().bind(geometry)
        log.info("memory=recent: SAM 2 reads the last %d tracked frames", self.settings.keep)

    def read(self, g, t, reverse):
        type(self).reads += 1
        step = -1 if reverse else 1
        return {s: e for s, e in g.store(reverse).items() if 0 < (t - s) * step <= self.settings.keep}
'''

YAMLS = {
    "sink/with_areas.yaml": "defaults:\n  - all\n  - _self_\nareas: true\nareas_every: 1\n",
    "source/npy.yaml": "kind: npy\npath: null\nfps: 10.0\nstart: 0\nstop: null\nstride: 1\nmax_frames: null\n",
    "memory/recent.yaml": "name: recent\nkeep: 3\n",
}
N, W, H = 12, 160, 120
MODULES = ("areas_sink.py", "npy_source.py", "recent_memory.py")


@pytest.fixture(scope="module")
def plugins(tmp_path_factory) -> Path:
    """A folder of plug-ins that nothing in the package knows of, and a clip in the new source's format."""
    root = tmp_path_factory.mktemp("my_plugins")
    for name, text in (("areas_sink.py", SINK), ("npy_source.py", SOURCE), ("recent_memory.py", POLICY)):
        (root / name).write_text(text)
    for name, text in YAMLS.items():
        (root / "configs" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "configs" / name).write_text(text)
    np.save(root / "clip.npy", np.stack(list(moving_shapes(N, W, H))))
    return root


def _tracker(plugins: Path, out: Path, *args: str) -> subprocess.CompletedProcess:
    loaded = ",".join(str(plugins / m) for m in MODULES)
    cmd = [sys.executable, "-m", "tracker.apps.cli", "--config-dir", str(plugins / "configs")]
    cmd += [f"plugins=[{loaded}]", "model=toy", f"output_dir={out}", "progress=false", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def _disc_box() -> str:
    ys, xs = np.nonzero(ground_truth(0, N, W, H) == 1)
    return f"prompts.box=[{xs.min()},{ys.min()},{xs.max()},{ys.max()}]"


def test_a_sink_a_source_and_a_policy_from_a_folder_of_their_own_run(plugins, tmp_path):
    out = tmp_path / "out"
    run = ["source=npy", f"source.path={plugins / 'clip.npy'}", "sink=with_areas", "sink.areas_every=2"]
    res = _tracker(plugins, out, *run, "memory=recent", "memory.keep=2", _disc_box(), "prompts.frame=0")
    assert res.returncode == 0, res.stderr
    # the sink's file, with its option: every 2nd frame, the disc's area near the truth's
    rows = list(csv.DictReader((out / "areas.csv").open()))
    assert [int(r["frame"]) for r in rows] == list(range(0, N, 2))
    truth = [int((ground_truth(t, N, W, H) == 1).sum()) for t in range(0, N, 2)]
    assert all(0.5 * a <= int(r["area"]) <= 1.5 * a for r, a in zip(rows, truth)), (rows, truth)
    # the source's frames, the built-in sinks beside the new one, and the policy with its setting
    assert len(list((out / "masks").glob("*.png"))) == N
    record = json.loads((out / "run.json").read_text())
    assert record["source"]["num_frames"] == N and record["source"]["fps"] == 10.0
    assert "memory=recent: SAM 2 reads the last 2 tracked frames" in (out / "run.log").read_text()

    # The Python door, the sink's keys given without its yaml: the same files.
    box = [int(v) for v in _disc_box().split("=")[1].strip("[]").split(",")]
    script = f"""
import tracker
tracker.run({str(plugins / "clip.npy")!r}, {{"objects": [{{"id": 1, "prompts": [{{"frame": 0, "box": {box}}}]}}]}},
            {str(tmp_path / "py")!r}, model="toy", config_dir={str(plugins / "configs")!r}, progress=False,
            plugins={[str(plugins / m) for m in MODULES]!r},
            source={{"kind": "npy"}}, memory={{"name": "recent", "keep": 2}}, sink={{"areas": True, "areas_every": 2}})
"""
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    for name in ("areas.csv", "masks.jsonl"):
        assert (tmp_path / "py" / name).read_bytes() == (out / name).read_bytes(), name


def test_a_plugins_sink_keys_join_on_the_command_line_without_a_yaml(plugins, tmp_path):
    """``+sink.<key>=`` adds a plug-in sink's switch and keys, as Hydra adds any key; a key no sink owns
    is refused in one line."""
    src = ["source=npy", f"source.path={plugins / 'clip.npy'}", _disc_box(), "prompts.frame=0"]
    res = _tracker(plugins, tmp_path / "a", *src, "+sink.areas=true", "+sink.areas_every=3")
    assert res.returncode == 0, res.stderr
    assert [r["frame"] for r in csv.DictReader((tmp_path / "a" / "areas.csv").open())] == ["0", "3", "6", "9"]
    res = _tracker(plugins, tmp_path / "b", *src, "+sink.areas=true", "+sink.area_every=3")
    errors = [x for x in res.stderr.splitlines() if x.startswith("tracker: error:")]
    assert res.returncode == 2 and len(errors) == 1, res.stderr
    assert "sink.area_every is no sink's switch or setting: use one of" in errors[0]


@pytest.mark.parametrize(
    "args, needle",
    [
        (["sink=with_areas", "sink.areas_every=0"], "sink.areas_every=0 is not usable"),
        (["memory=recent", "memory.keep=9"], "memory.keep=9 is out of range: memory=recent takes 1 to 6"),
        (["source=npy", "source.fps=-1"], "source.fps=-1"),
    ],
)
def test_a_plugins_settings_are_checked_by_its_own_record(plugins, tmp_path, args, needle):
    """A plug-in's bad value: one line from its record, exit 2, before a frame is decoded."""
    out = tmp_path / "out"
    source = [] if "source=npy" in args else [f"source.path={plugins / 'clip.npy'}", "source=npy"]
    res = _tracker(plugins, out, *source, *args, _disc_box(), "prompts.frame=0")
    errors = [x for x in res.stderr.splitlines() if x.startswith("tracker: error:")]
    assert res.returncode == 2 and len(errors) == 1 and needle in errors[0], res.stderr
    assert "Traceback" not in res.stderr and not (out / "run.json").exists()


@pytest.mark.parametrize(
    "entry, needle",
    [
        ("nope/missing.py", "is not a Python file (.py)"),
        ("no_such_module_xyz", "failed to load (ModuleNotFoundError"),
        ("broken.py", "failed to load (NameError: name 'undefined_name' is not defined): fix the plug-in"),
        ("twice.py", "sink.png is registered twice"),
        ("inside.py", "is inside the output folder"),
    ],
)
def test_a_bad_plugin_is_one_line(tmp_path, clip32, entry, needle):
    out = tmp_path / "out"
    (tmp_path / "broken.py").write_text("undefined_name\n")
    (tmp_path / "twice.py").write_text("from tracker.io.sinks.base import register\nregister('png', (), None)\n")
    out.mkdir()
    (out / "inside.py").write_text("print('never run')\n")
    path = {"inside.py": out / "inside.py"}.get(entry, tmp_path / entry if entry.endswith(".py") else entry)
    cmd = [sys.executable, "-m", "tracker.apps.cli", f"plugins=[{path}]", "model=toy", f"output_dir={out}"]
    res = subprocess.run([*cmd, f"source.path={clip32}", "prompts.box=[1,1,20,20]"], capture_output=True, text=True)
    errors = [x for x in res.stderr.splitlines() if x.startswith("tracker: error:")]
    assert res.returncode == 2 and len(errors) == 1 and needle in errors[0], res.stderr
    assert "never run" not in res.stdout and not (out / "run.json").exists()


def test_the_studio_tracks_with_the_plugins(plugins, tmp_path):
    """``tracker-studio --config-dir ... plugins=[...]``: the page's frames come from the plug-in source and
    a Track writes the plug-in sink's file with the plug-in policy."""
    box = [float(v) for v in _disc_box().split("=")[1].strip("[]").split(",")]
    overrides = [
        "model=toy",
        f"plugins={[str(plugins / m) for m in MODULES]}".replace("'", ""),
        "source=npy",
        f"source.path={plugins / 'clip.npy'}",
        f"output_dir={tmp_path / 'out'}",
        "memory=recent",
        "sink=with_areas",
    ]
    script = f"""
import time
from tracker.api import compose_config
from tracker.apps.studio import build_studio
studio = build_studio(compose_config({overrides!r}, name="studio", extra_dir={str(plugins / "configs")!r}))
assert studio.info.num_frames == {N}
studio.set_prompt(1, 0, [], {box!r})
job = studio.start_track()
while studio.job(job).state == "running":
    time.sleep(0.2)
assert studio.job(job).state == "done", studio.job(job).status()
studio.close()
from tracker.engine.memory import MEMORY_POLICIES
assert MEMORY_POLICIES["recent"].reads >= {N - 1}, MEMORY_POLICIES["recent"].reads
"""
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    rows = list(csv.DictReader((tmp_path / "out" / "areas.csv").open()))
    assert len(rows) == N and all(int(r["area"]) > 0 for r in rows)
    assert json.loads((tmp_path / "out" / "run.json").read_text())["config"]["memory"] == {"name": "recent", "keep": 3}


def test_a_relative_plugin_file_is_the_callers_also_when_hydra_changes_folder(plugins, tmp_path):
    """``plugins=[areas_sink.py]`` from the plug-ins' folder, with ``hydra.job.chdir=true`` (the run moves
    into its output folder first): the file is still the one next to the caller."""
    cmd = [sys.executable, "-m", "tracker.apps.cli", "--config-dir", str(plugins / "configs"), "hydra.job.chdir=true"]
    cmd += ["plugins=[areas_sink.py,npy_source.py]", "model=toy", f"output_dir={tmp_path / 'out'}", "progress=false"]
    cmd += ["source=npy", "source.path=clip.npy", "+sink.areas=true", _disc_box(), "prompts.frame=0"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=plugins)
    assert res.returncode == 0, res.stderr
    assert len(list(csv.DictReader((tmp_path / "out" / "areas.csv").open()))) == N
