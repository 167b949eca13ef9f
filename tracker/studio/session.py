"""The studio's state: objects and their prompts, previews on a prompt frame, and Track jobs.

No Hydra and no HTTP here: the server calls these methods, and a Track calls ``run_track`` (the apps
layer passes the CLI's own run, so a Track writes what ``tracker`` writes for the same prompts file).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import math
import os
import shutil
import stat
import tempfile
import threading
import traceback
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import yaml

from ..engine.propagation import points_and_labels
from ..files import write_atomic
from ..io.annotation import color_of
from ..io.clip import ClipSource
from ..io.prompts import TrackSpec, prompt_entry
from ..masks import decode_rle, encode_rle, png_id_hint, sigmoid, to_video_masks
from ..records import EVERY_FRAME, Frame, FrameMasks, FrameRange, Prompt
from .frames import FrameStore

log = logging.getLogger(__name__)

PROMPTS_FILE = "prompts.yaml"
# What a done Track offers for download, from its output folder (masks.zip: masks/ as one file).
EXPORTS = ("annotated.mp4", "masks.zip", "masks.jsonl", "instances.json", "tracks.csv", PROMPTS_FILE)


def main_part(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected part of a bool [H, W] mask (all False when it is empty)."""
    import cv2

    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 2:
        return mask.copy()
    return labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))


def _identity(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


def _identities(out: Path) -> dict[str, tuple[int, int]]:
    """What a done Track's exports are, to serve exactly those files later (``masks.zip``: ``masks/``)."""
    found = {}
    for name in EXPORTS:
        if _exported(out, name):
            with contextlib.suppress(OSError):
                found[name] = _identity(os.lstat(out / ("masks" if name == "masks.zip" else name)))
    return found


def _open_nofollow(path: Path, flags: int, missing: StudioError) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_NOFOLLOW | flags)
    except OSError:  # a link (ELOOP), gone, or no longer a folder
        raise missing from None


def _open_same(path: Path, identity: tuple[int, int], replaced: StudioError) -> tuple[BinaryIO, int]:
    f = os.fdopen(_open_nofollow(path, 0, replaced), "rb")
    st = os.fstat(f.fileno())
    if not stat.S_ISREG(st.st_mode) or _identity(st) != identity:
        f.close()
        raise replaced
    return f, st.st_size


def _plain(path: Path, folder: bool) -> bool:
    """A real file (or folder) at ``path``, not a link: what a run wrote there, never a way out."""
    return not path.is_symlink() and (path.is_dir() if folder else path.is_file())


def _exported(out: Path, name: str) -> bool:
    """Whether the output folder ``out`` has the export ``name`` (``masks.zip``: a ``masks/`` folder)."""
    return _plain(out / "masks", folder=True) if name == "masks.zip" else _plain(out / name, folder=False)


class StudioError(ValueError):
    """A request the studio cannot carry out; the message names the value and the fix."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


class TrackCancelled(RuntimeError):
    """The studio is closing while a Track runs: the run is abandoned (its outputs are not committed)."""


@dataclass
class EditedPrompt:
    """One object's prompt on one frame as the page edits it. ``base`` is the mask the clicks refine
    (a tracked mask being corrected, or a mask from the prompts file), bool [H, W] or None."""

    points: tuple[tuple[float, float, int], ...] = ()
    box: tuple[float, float, float, float] | None = None
    base: np.ndarray | None = None
    preview: dict | None = None  # {"mask": RLE, "score": float}, made on demand

    def as_record(self, object_id: int, frame: int) -> Prompt:
        return Prompt(object_id, frame, points=self.points, box=self.box, mask=self.base)


@dataclass
class StudioObject:
    label: str | None = None
    prompts: dict[int, EditedPrompt] = field(default_factory=dict)


class TrackResults:
    """A Track's per-frame masks (COCO RLE and scores) in a temp file, readable while the job runs.
    Used as a sink of the run: a context manager with ``write(frame, masks)``."""

    def __init__(self, folder: Path, cancelled: threading.Event, clip: FrameRange = EVERY_FRAME) -> None:
        self.clip = clip  # the run writes the video's frame numbers; the page asks by the run's
        self._file = tempfile.TemporaryFile(prefix="studio-track-", dir=folder)
        self._index: dict[int, tuple[int, int]] = {}
        self._lock = threading.Lock()
        self._cancelled = cancelled
        self.frames_done = 0
        self.object_ids: set[int] = set()
        self.presence: dict[int, list[list[int]]] = {}  # object id -> [first, last] runs of frames shown

    def __enter__(self) -> TrackResults:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def write(self, frame: Frame, masks: FrameMasks) -> None:
        if self._cancelled.is_set():
            raise TrackCancelled("the studio is closing: Track cancelled")
        objects = [
            {"id": int(oid), "mask": encode_rle(m), "score": round(float(s), 5) if math.isfinite(s) else None}
            for oid, m, s in zip(masks.object_ids, masks.masks, masks.scores)
        ]
        self.object_ids.update(int(oid) for oid in masks.object_ids)
        shown = [int(oid) for oid, m in zip(masks.object_ids, masks.masks) if m.any()]
        index = self.clip.run_frame(frame.index, None)
        assert index is not None, f"frame {frame.index} is not one of the run's"
        blob = json.dumps({"frame": index, "objects": objects}).encode()
        with self._lock:
            self._file.seek(0, os.SEEK_END)
            self._index[index] = (self._file.tell(), len(blob))
            self._file.write(blob)
            self.frames_done += 1
            for oid in masks.object_ids:
                self.presence.setdefault(int(oid), [])
            for oid in shown:
                runs = self.presence[oid]
                if runs and runs[-1][1] == index - 1:  # frames come in order
                    runs[-1][1] = index
                else:
                    runs.append([index, index])

    def presence_runs(self) -> dict[int, list[list[int]]]:
        with self._lock:
            return {k: [list(r) for r in v] for k, v in self.presence.items()}

    def read(self, index: int) -> dict | None:
        with self._lock:
            where = self._index.get(index)
            if where is None:
                return None
            self._file.seek(where[0])
            return json.loads(self._file.read(where[1]))

    def mask_of(self, object_id: int, index: int) -> np.ndarray | None:
        row = self.read(index)
        for obj in (row or {}).get("objects", []):
            if obj["id"] == object_id:
                return decode_rle(obj["mask"])
        return None

    def close(self) -> None:
        with self._lock:
            self._file.close()


@dataclass
class TrackJob:
    id: int
    num_frames: int
    results: TrackResults
    state: str = "running"  # running | done | failed
    error: str | None = None
    output_dir: str | None = None
    thread: threading.Thread | None = None
    files: dict[str, tuple[int, int]] = field(default_factory=dict)  # export name -> (st_dev, st_ino) at done

    def status(self) -> dict[str, Any]:
        return {
            "job": self.id,
            "state": self.state,
            "frames_done": self.results.frames_done,
            "num_frames": self.num_frames,
            "output_dir": self.output_dir,
            "error": self.error,
        }


# run_track(prompts_file, extra_sinks) -> run.json's content; raises on failure.
RunTrack = Callable[[Path, Sequence[Any]], Mapping[str, Any]]


@dataclass(frozen=True)
class StudioLimits:
    """The highest object id the page may give (the PNG masks' limit when they are written) and how many
    frames' image features are kept for previews."""

    max_object_id: int = 2**31 - 1
    feature_cache: int = 8

    def __post_init__(self) -> None:
        if self.max_object_id < 1 or self.feature_cache < 1:
            raise ValueError(f"studio limits {self} must be at least 1")


@dataclass(frozen=True)
class Finder:
    """The page's "Find objects" on a frame: the mask generator (a :class:`tracker.discovery.MaskGenerator`),
    and when one of its masks is new there (``new_iou``, ``max_covered``, as in a run's discovery)."""

    generator: Any
    new_iou: float = 0.1
    max_covered: float = 0.5


class Studio:
    """Objects, prompts, previews and Track jobs over one video and one model."""

    def __init__(
        self,
        model,
        frames: FrameStore,
        output_dir: str | Path,
        run_track: RunTrack,
        spec: TrackSpec | None = None,
        limits: StudioLimits = StudioLimits(),
        command: Callable[[Path], str] | None = None,
        finder: Finder | None = None,
    ) -> None:
        """``finder``: "Find objects" on a frame (None: the page cannot); ``command``: the ``tracker``
        command line a saved prompts file is tracked with, as the page shows it."""
        self.finder = finder
        self.model = model
        self.warning: str | None = None  # said on the page as it opens (e.g. the toy model on real footage)
        self.frames = frames
        self.info = frames.info
        # Part of a video (source.start/stride): the page's frames are the run's; files speak the video's.
        self.clip = frames.source.range if isinstance(frames.source, ClipSource) else EVERY_FRAME
        self.output_dir = Path(output_dir)
        self.max_object_id = limits.max_object_id
        self._run_track = run_track
        self._command = command
        self._features: OrderedDict[int, Any] = OrderedDict()
        self._feature_cache = limits.feature_cache
        self._lock = threading.RLock()  # objects, jobs
        self._model_lock = threading.Lock()  # previews one at a time (a Track runs beside them)
        self._closing = threading.Event()
        self._work = Path(tempfile.mkdtemp(prefix="tracker-studio-"))
        self._job_ids = itertools.count(1)
        self.jobs: dict[int, TrackJob] = {}
        self.objects: dict[int, StudioObject] = {}
        if spec is not None:
            for oid in spec.object_ids:
                self.objects[oid] = StudioObject(label=spec.labels.get(oid))
            for p in spec.prompts:
                self.objects[p.object_id].prompts[p.frame_index] = EditedPrompt(p.points, p.box, p.mask)

    # ---- objects and prompts --------------------------------------------------------------
    def _check_id(self, object_id: int) -> None:
        if not 1 <= object_id <= self.max_object_id:
            hint = png_id_hint(self.max_object_id, "start with sink.png=false")
            raise StudioError(f"object id {object_id} must be an integer from 1 to {self.max_object_id}{hint}")

    def _check_frame(self, frame: int) -> None:
        n = self.frames.num_frames
        if not 0 <= frame < n:
            raise StudioError(f"frame {frame} is out of range: the video has {n} frames (0..{n - 1})")

    def list_objects(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {
                    "id": oid,
                    "label": obj.label,
                    "color": list(color_of(oid)),
                    "prompts": [
                        {
                            "frame": f,
                            "points": [list(p) for p in e.points],
                            "box": list(e.box) if e.box else None,
                            "mask": e.base is not None,
                        }
                        for f, e in sorted(obj.prompts.items())
                    ],
                }
                for oid, obj in sorted(self.objects.items())
            ]

    def set_label(self, object_id: int, label: str | None) -> dict[str, Any]:
        self._check_id(object_id)
        with self._lock:
            obj = self.objects.setdefault(object_id, StudioObject())
            obj.label = _clean_label(label)
            return {"id": object_id, "label": obj.label, "color": list(color_of(object_id))}

    def delete_object(self, object_id: int) -> None:
        with self._lock:
            if self.objects.pop(object_id, None) is None:
                raise StudioError(f"object {object_id} does not exist", status=404)

    def delete_prompt(self, object_id: int, frame: int) -> None:
        with self._lock:
            obj = self.objects.get(object_id)
            if obj is None or obj.prompts.pop(frame, None) is None:
                raise StudioError(f"object {object_id} has no prompt on frame {frame}", status=404)

    def set_prompt(
        self,
        object_id: int,
        frame: int,
        points: Sequence[Sequence[float]],
        box: Sequence[float] | None,
        label: str | None = None,
    ) -> dict[str, Any]:
        """Replace ``object_id``'s clicks and box on ``frame`` and return the preview
        ``{"mask": RLE, "score": float}``. On a frame a Track has tracked, the clicks refine the tracked
        mask (kept as the prompt's mask, so that the next Track and the CLI start from it)."""
        self._check_id(object_id)
        self._check_frame(frame)
        # Hundredths of a pixel: what the prompts file shows is what the preview used.
        pts = tuple((round(float(x), 2), round(float(y), 2), int(lab)) for x, y, lab in points)
        box_t = tuple(round(float(v), 2) for v in box) if box is not None else None
        with self._lock:
            obj = self.objects.get(object_id)
            old = obj.prompts.get(frame) if obj is not None else None
            base = old.base if old is not None else self._tracked_mask(object_id, frame)
        if not pts and box_t is None and (old is None or old.base is None):
            # (a prompt with a mask keeps it without clicks: undoing the clicks on a found object)
            raise StudioError(
                f"object {object_id}, frame {frame}: empty prompt: give points or a box "
                "(DELETE the prompt to remove it)"
            )
        try:
            record = Prompt(object_id, frame, points=pts, box=box_t, mask=base)  # type: ignore[arg-type]
            record.check_against(self.info)
        except ValueError as e:
            raise StudioError(str(e)) from None
        edited = EditedPrompt(record.points, record.box, base)
        edited.preview = self._preview(record)
        with self._lock:
            obj = self.objects.setdefault(object_id, StudioObject())
            if label is not None:
                obj.label = _clean_label(label)
            obj.prompts[frame] = edited
        return edited.preview

    def get_prompt(self, object_id: int, frame: int) -> dict[str, Any]:
        with self._lock:
            obj = self.objects.get(object_id)
            edited = obj.prompts.get(frame) if obj is not None else None
        if edited is None:
            raise StudioError(f"object {object_id} has no prompt on frame {frame}", status=404)
        if edited.preview is None:
            edited.preview = self._preview(edited.as_record(object_id, frame))
        return {
            "points": [list(p) for p in edited.points],
            "box": list(edited.box) if edited.box else None,
            "mask_prompt": edited.base is not None,
            **edited.preview,
        }

    def _tracked_mask(self, object_id: int, frame: int) -> np.ndarray | None:
        """The mask the latest finished Track gave the object on ``frame`` (None: none, or empty)."""
        done = [j for j in self.jobs.values() if j.state == "done"]
        if not done:
            return None
        mask = done[-1].results.mask_of(object_id, frame)
        return mask if mask is not None and mask.any() else None

    def _mask_on(self, object_id: int, frame: int) -> np.ndarray | None:
        """What the page shows of an object on ``frame``: its prompt's preview there, else its tracked mask."""
        with self._lock:
            obj = self.objects.get(object_id)
            has_prompt = obj is not None and frame in obj.prompts
        if has_prompt:
            return decode_rle(self.get_prompt(object_id, frame)["mask"])
        return self._tracked_mask(object_id, frame)

    def _next_id(self) -> int:
        done = [j for j in self.jobs.values() if j.state == "done"]
        tracked = done[-1].results.object_ids if done else set()
        return max([*self.objects, *tracked], default=0) + 1

    def find_objects(self, frame: int) -> dict[str, Any]:
        """Run the automatic mask generator on ``frame``: each mask that overlaps no object shown there
        becomes a new object (the next free ids) with that mask as its prompt on ``frame``."""
        from ..discovery.discover import new_candidates
        from ..masks import to_grid

        if self.finder is None:
            raise StudioError("this studio has no mask generator", status=404)
        self._check_frame(frame)
        grid = self.model.image_size // 4
        with self._lock:
            ids = list(self.objects)
        shown = [m for m in (self._mask_on(oid, frame) for oid in ids) if m is not None]
        known = np.stack([to_grid(m, grid) for m in shown]) if shown else np.zeros((0, grid, grid), dtype=bool)
        with self._model_lock:
            cands = self.finder.generator.generate(self.features(frame), known.any(0) if len(known) else None)
        new = new_candidates(cands, known, self.finder.new_iou, self.finder.max_covered)
        size = (self.info.height, self.info.width)
        # An object is made only from a mask a person can see: its largest connected part, at least the
        # generator's minimum area at video size, and a preview from it that is not smaller (a candidate
        # of a few scattered pixels on the low-res grid made an invisible object before).
        min_area = max(16, int(getattr(self.finder.generator.settings, "min_area", 0.0) * size[0] * size[1]))
        added, dropped = [], 0
        next_id = self._next_id()
        for c in new:
            if next_id > self.max_object_id:
                break
            mask = main_part(c.video_mask(size))
            edited = EditedPrompt(base=mask) if mask.sum() >= min_area else None
            if edited is not None:
                edited.preview = self._preview(edited.as_record(next_id, frame))
                if decode_rle(edited.preview["mask"]).sum() < min_area:
                    edited = None
            if edited is None:
                dropped += 1
                continue
            with self._lock:
                next_id = max(next_id, self._next_id())
                self.objects[next_id] = StudioObject(prompts={frame: edited})
            added.append(next_id)
            next_id += 1
        return {"frame": frame, "found": len(cands), "objects": added, "dropped": dropped}

    # ---- previews ---------------------------------------------------------------------------
    def features(self, frame: int):
        """The frame's image features (SAM 2's backbone), from a bounded LRU cache. Call with the model
        lock held."""
        feats = self._features.get(frame)
        if feats is not None:
            self._features.move_to_end(frame)
            return feats
        feats = self.model.image_features(self.model.preprocess(self.frames.rgb(frame)))
        self._features[frame] = feats
        while len(self._features) > self._feature_cache:
            self._features.popitem(last=False)
        return feats

    def _preview(self, prompt: Prompt) -> dict[str, Any]:
        """The mask ``prompt`` gives on its frame: what a Track's prompt frame outputs."""
        pts, labels = points_and_labels(prompt)
        size = (self.info.height, self.info.width)
        with self._model_lock:
            feats = self.features(prompt.frame_index)
            low, score = self.model.preview(feats, prompt.frame_index, size, pts, labels, prompt.mask)
        mask = to_video_masks(low[None], size)[0]
        return {"mask": encode_rle(mask), "score": round(float(sigmoid(np.float32(score))), 5)}

    # ---- the prompts file ---------------------------------------------------------------------
    def prompts_document(self) -> dict[str, Any]:
        """The prompts in the CLI's schema (tracker/io/prompts.py); masks inline as COCO RLE. Objects
        without a prompt are left out (the CLI needs at least one per object)."""
        objects = []
        with self._lock:
            for oid, obj in sorted(self.objects.items()):
                entries = [
                    prompt_entry(self.clip.video_frame(f), e.points, e.box, e.base)
                    for f, e in sorted(obj.prompts.items())
                ]
                if entries:
                    item: dict[str, Any] = {"id": oid}
                    if obj.label is not None:
                        item["label"] = obj.label
                    item["prompts"] = entries
                    objects.append(item)
        return {"objects": objects}

    def prompts_yaml(self) -> str:
        doc = self.prompts_document()
        head = "# tracker prompts, written by tracker-studio (schema: tracker/io/prompts.py)\n"
        return head + yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=1 << 16)

    def save(self) -> dict[str, Any]:
        """Write ``OUTPUT_DIR/prompts.yaml`` (atomically) and return its path and the CLI command."""
        if not self.prompts_document()["objects"]:
            raise StudioError("nothing to save: give at least one object a prompt (click on it)")
        self.output_dir.mkdir(parents=True, exist_ok=True)
        path = self.output_dir / PROMPTS_FILE
        write_atomic(path, self.prompts_yaml())
        return {"path": str(path), "command": self._command(path) if self._command else None}

    # ---- Track --------------------------------------------------------------------------------
    def start_track(self) -> int:
        """Save the prompts, then run them through the whole video in a background thread."""
        with self._lock:
            if self._closing.is_set():
                raise StudioError("the studio is closing", status=503)
            running = [j for j in self.jobs.values() if j.state == "running"]
            if running:
                raise StudioError(f"Track {running[0].id} is still running: wait for it to finish", status=409)
            saved = self.save()
            job = TrackJob(
                next(self._job_ids), self.frames.num_frames, TrackResults(self._work, self._closing, self.clip)
            )
            self.jobs[job.id] = job
            # Keep the latest done job (the page shows it; corrections start from it) and this one.
            done = [j.id for j in self.jobs.values() if j.state == "done"]
            keep = {job.id, *done[-1:]}
            for old in [j for j in self.jobs.values() if j.id not in keep]:
                old.results.close()
                del self.jobs[old.id]
            job.thread = threading.Thread(
                target=self._track, args=(job, Path(saved["path"])), name=f"studio-track-{job.id}"
            )
            job.thread.start()
        return job.id

    def _track(self, job: TrackJob, prompts_file: Path) -> None:
        try:
            record = self._run_track(prompts_file, [job.results])
            job.output_dir = str(self.output_dir)
            # Objects the run found (discover.every): listed here under the same ids, each with its first
            # mask as its prompt, so the next Track keeps them under those ids.
            for j in (record.get("discovery") or {}).get("joined", []):
                mask = job.results.mask_of(j["id"], j["frame"]) if j["kept"] else None
                if mask is not None and mask.any():
                    with self._lock:
                        self.objects.setdefault(j["id"], StudioObject(prompts={j["frame"]: EditedPrompt(base=mask)}))
            log.info("Track %d done: %s frames in %.1fs", job.id, record.get("frames"), record.get("wall_s", 0))
            job.files = _identities(self.output_dir)
            job.state = "done"
        except BaseException as e:
            from ..run.errors import one_line

            log.debug("Track %d failed:\n%s", job.id, traceback.format_exc())
            job.error = one_line(e) if not isinstance(e, TrackCancelled) else str(e)
            job.state = "failed"

    def job(self, job_id: int) -> TrackJob:
        job = self.jobs.get(job_id)
        if job is None:
            raise StudioError(f"Track {job_id} does not exist (or was dropped for a newer one)", status=404)
        return job

    def job_frame(self, job_id: int, frame: int) -> dict[str, Any]:
        job = self.job(job_id)
        self._check_frame(frame)
        row = job.results.read(frame)
        if row is None:
            raise StudioError(f"Track {job_id} has not reached frame {frame} yet", status=404)
        return row

    def job_presence(self, job_id: int) -> dict[str, Any]:
        """Where each object is shown in a Track: runs of frames ``[first, last]`` with a mask that is not
        empty (the timeline's lanes; gaps are frames where the object is absent)."""
        job = self.job(job_id)
        objects = {str(k): v for k, v in sorted(job.results.presence_runs().items())}
        return {"job": job.id, "num_frames": job.num_frames, "frames_done": job.results.frames_done, "objects": objects}

    def _exported_job(self, job_id: int) -> TrackJob:
        job = self.job(job_id)
        if job.state != "done" or job.output_dir is None:
            raise StudioError(f"Track {job_id} is {job.state}: its outputs are there once it is done", status=409)
        latest = max(j.id for j in self.jobs.values() if j.state == "done")
        if latest != job.id:
            raise StudioError(f"Track {job_id}'s outputs were replaced by Track {latest}'s: take those", status=410)
        return job

    def export_names(self, job_id: int) -> list[str]:
        """The outputs of a done Track that can be downloaded (in :data:`EXPORTS` order)."""
        out = Path(self._exported_job(job_id).output_dir)  # type: ignore[arg-type]
        return [n for n in EXPORTS if _exported(out, n)]

    def open_export(self, job_id: int, name: str) -> tuple[BinaryIO, int]:
        """A done Track's output ``name`` (one of :data:`EXPORTS`) opened for reading, and its size: opened
        once without following a link, and served only if it is the very file that Track wrote (same
        device and inode as when it was done), so neither a link swapped in nor a later Track's commit
        can change what is sent after the checks. ``masks.zip`` is made from ``masks/`` on first request."""
        if name not in EXPORTS:
            raise StudioError(f"no output called {name!r}: ask for one of {', '.join(EXPORTS)}", status=404)
        job = self._exported_job(job_id)
        out = Path(job.output_dir)  # type: ignore[arg-type]
        if not _exported(out, name) or name not in job.files:
            raise StudioError(f"Track {job_id} wrote no {name} (see sink.* in the studio's command)", status=404)
        replaced = StudioError(f"Track {job_id}'s {name} was replaced: run Track again", status=410)
        if name != "masks.zip":
            return _open_same(out / name, job.files[name], replaced)
        zipped = self._work / f"masks-{job.id}.zip"
        if not zipped.exists():
            self._zip_masks(out / "masks", job.files["masks.zip"], zipped, replaced)
        f = open(zipped, "rb")  # noqa: SIM115 (the response closes it)
        return f, os.fstat(f.fileno()).st_size

    def _zip_masks(self, masks: Path, identity: tuple[int, int], zipped: Path, replaced: StudioError) -> None:
        import zipfile

        folder = _open_nofollow(masks, os.O_DIRECTORY, replaced)
        try:
            if _identity(os.fstat(folder)) != identity:
                raise replaced
            # a private temp name: two requests at once each write their own, the last rename wins
            fd, tmp = tempfile.mkstemp(prefix=zipped.name, suffix=".tmp", dir=self._work)
            with os.fdopen(fd, "wb") as raw, zipfile.ZipFile(raw, "w", zipfile.ZIP_STORED) as z:
                for name in sorted(os.listdir(folder)):  # PNGs are compressed already: stored
                    if not name.endswith(".png"):
                        continue
                    try:
                        png = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=folder)
                    except OSError:
                        continue
                    with os.fdopen(png, "rb") as src:
                        if stat.S_ISREG(os.fstat(src.fileno()).st_mode):
                            z.writestr(zipfile.ZipInfo(f"masks/{name}"), src.read())
            os.replace(tmp, zipped)
        finally:
            os.close(folder)

    def close(self, timeout: float = 60.0) -> None:
        """Cancel a running Track (its outputs are not committed) and free the caches."""
        self._closing.set()
        for job in list(self.jobs.values()):
            if job.thread is not None:
                job.thread.join(timeout)
        for job in self.jobs.values():
            job.results.close()
        self.frames.close()
        shutil.rmtree(self._work, ignore_errors=True)  # the studio's own temp folder: zips made for downloads


def _clean_label(label: str | None) -> str | None:
    if label is None:
        return None
    text = " ".join(str(label).split())
    if len(text) > 100:
        raise StudioError(f"label {text[:20]!r}... is {len(text)} characters: use at most 100")
    return text or None
