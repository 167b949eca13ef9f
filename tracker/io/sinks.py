"""Sinks: where tracked frames go. Each is a context manager with ``write(frame, masks)``.

Every sink writes to a temporary name beside its target and renames it into place only when the
``with`` block ends without an error, so a crash or Ctrl-C never leaves a file that looks complete.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import cv2
import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from ..records import Frame, FrameMasks, VideoInfo
from .annotation import annotate

log = logging.getLogger(__name__)


def mask_bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """[x, y, w, h] of a bool mask's pixels (None when empty)."""
    ys = np.flatnonzero(mask.any(axis=1))
    if ys.size == 0:
        return None
    xs = np.flatnonzero(mask.any(axis=0))
    return int(xs[0]), int(ys[0]), int(xs[-1] - xs[0] + 1), int(ys[-1] - ys[0] + 1)


def davis_palette() -> list[int]:
    """The DAVIS/PASCAL VOC colour map: index i -> RGB, 256 entries flattened."""
    pal = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal += [r, g, b]
    return pal


class Sink:
    """Base: a target path written as ``<target>.partial`` and renamed on success."""

    live = False  # see make_live

    def __init__(self, target: Path) -> None:
        self.target = Path(target)
        self.partial = self.target.with_name(self.target.name + ".partial")
        self.frames_written = 0

    def make_live(self) -> Sink:
        """Write under the final name, valid up to the last frame written, and finalise it however the
        run ends (a live stream's outputs are its product while it runs)."""
        self.live = True
        self.partial = self.target
        return self

    _resume: dict | None = None
    keep_on_failure = False  # a resumable run keeps its partial outputs when it fails (for resume=true)

    def __enter__(self) -> Sink:
        if self._resume is not None:
            self.reopen(self._resume)
            self.frames_written = self._resume["frames"]
        else:
            self._remove(self.partial)
            self.open()
        return self

    # A resumable run checkpoints every sink's position; a resumed one reopens its partial output there.
    def position(self) -> dict:
        """Flush, and say where the output stands after the frames written so far (``frames``: their
        count; the rest is the sink's own)."""
        raise NotImplementedError(f"{type(self).__name__} cannot be resumed")

    def reopen(self, position: dict) -> None:
        """Open the partial output as it was at ``position``, dropping what was written after it."""
        raise NotImplementedError(f"{type(self).__name__} cannot be resumed")

    def resume_from(self, position: dict) -> Sink:
        self._resume = position
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        ok = exc_type is None or self.live
        try:
            self.close(ok=ok)
        except Exception as e:
            if not self.keep_on_failure:
                self._remove(self.partial)
            if ok:
                raise
            # Closing after another failure: that failure is the one to report.
            log.debug("%s: close after a failure raised %s", self.target.name, e)
            return
        if self.live:
            return
        if ok:
            self._remove(self.target)
            os.replace(self.partial, self.target)
        elif not self.keep_on_failure:
            self._remove(self.partial)

    @staticmethod
    def _remove(path: Path) -> None:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()

    def open(self) -> None:
        raise NotImplementedError

    def write(self, frame: Frame, masks: FrameMasks) -> None:
        raise NotImplementedError

    def close(self, ok: bool) -> None:
        raise NotImplementedError


# Audio codecs the MP4 muxer takes as they are; any other (PCM from cameras and screen recorders, Vorbis,
# FLAC, ...) is transcoded to AAC.
MP4_AUDIO_COPY = frozenset({"aac", "mp3", "ac3", "eac3", "alac"})


class AnnotatedVideoSink(Sink):
    """H.264 mp4 of the annotated frames: the source's timestamps (VFR kept) and its audio (copied when
    MP4 can carry it, else transcoded to AAC, else dropped with a warning; ``audio`` says which).

    libx264 with yuv420p needs even sizes: odd widths/heights are padded by one edge pixel.
    """

    def __init__(
        self,
        target: Path,
        info: VideoInfo,
        source_path: Path | None,
        labels: Mapping[int, str | None] | None = None,
        crf: int = 20,
        preset: str = "veryfast",
        alpha: float = 0.45,
    ) -> None:
        super().__init__(target)
        self.info, self.source_path, self.labels = info, source_path, labels
        self.crf, self.preset, self.alpha = crf, preset, alpha
        self.audio: dict[str, str] = {"mode": "none"}

    segmented = False  # a resumable run: the video is written in segments (one per checkpoint), joined at close

    def _setup(self) -> None:
        self._rate = Fraction(self.info.fps).limit_denominator(1001) if self.info.fps else Fraction(24)
        self._w = self.info.width + self.info.width % 2
        self._h = self.info.height + self.info.height % 2
        # Timestamps are copied from the source, so use its time base (VFR stays VFR).
        tb = self.info.time_base
        self._tb = Fraction(tb).limit_denominator(1 << 30) if tb else 1 / self._rate
        self._last_pts = -1
        self._audio_in = None
        self._out = None
        self._segments = 0  # complete segments

    def _video_file(self, path: Path, fmt: str, options: dict[str, str]) -> None:
        self._out = av.open(str(path), "w", format=fmt, options=options)
        self._vs = self._out.add_stream("libx264", rate=self._rate)
        self._vs.width, self._vs.height, self._vs.pix_fmt = self._w, self._h, "yuv420p"
        opts = {"crf": str(self.crf), "preset": self.preset}
        if self.live:
            opts.update({"tune": "zerolatency", "g": str(max(1, round(float(self._rate))))})
        if self.segmented:
            opts["bf"] = "0"  # decode order = display order: segments join with monotonic timestamps
        self._vs.options = opts
        self._vs.time_base = self._tb
        self._vs.codec_context.time_base = self._tb  # else the encoder rescales pts to 1/fps (VFR collides)

    def _segment(self, k: int) -> Path:
        return self.partial.with_name(f"{self.partial.name}.seg{k:05d}.nut")

    def open(self) -> None:
        self._setup()
        if self.segmented:
            return  # the first write opens segment 0
        if self.live:
            # Fragmented MP4, a fragment per frame, flushed at once, and an encoder without look-ahead:
            # whenever the process dies, the file plays up to the last frame written.
            movflags = "+frag_keyframe+empty_moov+default_base_moof+frag_every_frame"
            options = {"movflags": movflags, "flush_packets": "1"}
        else:
            # faststart: the index (moov) goes before the media data, so a browser plays while downloading
            options = {"movflags": "+faststart"}
        self._video_file(self.partial, "mp4", options)
        if self.source_path is not None and self.info.has_audio:
            self._open_audio()

    def position(self) -> dict:
        if not self.segmented:
            raise NotImplementedError("the annotated video is resumable only when written in segments")
        self._end_segment(flush=True)
        return {"frames": self.frames_written, "segments": self._segments, "last_pts": self._last_pts}

    def reopen(self, position: dict) -> None:
        self._setup()
        self._segments, self._last_pts = position["segments"], position["last_pts"]
        for f in self.partial.parent.glob(f"{self.partial.name}.seg*.nut"):
            if int(f.stem.rsplit("seg", 1)[1]) >= self._segments:
                f.unlink()

    def _end_segment(self, flush: bool) -> None:
        if self._out is None:
            return
        try:
            if flush:
                for p in self._vs.encode():
                    self._out.mux(p)
        finally:
            self._out.close()
            self._out = None
        if flush:
            self._segments += 1

    def _open_audio(self) -> None:
        try:
            self._audio_in = av.open(str(self.source_path))
            a = self._audio_in.streams.audio[0]
            codec = a.codec_context.name
            if codec in MP4_AUDIO_COPY:
                self._as = self._out.add_stream_from_template(a)
                self.audio = {"mode": "copy", "codec": codec}
            else:
                rate = a.codec_context.sample_rate or 48000
                layout = "mono" if a.codec_context.channels == 1 else "stereo"
                self._as = self._out.add_stream("aac", rate=rate, layout=layout)
                self.audio = {"mode": "transcode", "codec": codec, "to": "aac"}
        except (av.error.FFmpegError, ValueError, IndexError) as e:
            log.warning("%s: the source's audio cannot be opened (%s): annotated.mp4 has no audio", self.target.name, e)
            self.audio = {"mode": "dropped", "reason": f"cannot be opened ({e})"}
            if self._audio_in is not None:
                self._audio_in.close()
                self._audio_in = None

    def write(self, frame: Frame, masks: FrameMasks) -> None:
        if self._out is None:  # segmented: the next segment
            self._video_file(self._segment(self._segments), "nut", {})
        img = annotate(frame.rgb, masks, self.labels, alpha=self.alpha)
        if img.shape[:2] != (self._h, self._w):
            img = np.pad(img, ((0, self._h - img.shape[0]), (0, self._w - img.shape[1]), (0, 0)), mode="edge")
        vf = av.VideoFrame.from_ndarray(img, format="rgb24")
        if frame.time is not None:
            pts = int(round(frame.time / float(self._tb)))
        else:
            pts = self.frames_written
        # The encoder refuses non-increasing timestamps (rounding can collide): nudge by one tick.
        pts = max(pts, self._last_pts + 1)
        vf.pts, vf.time_base = pts, self._tb
        self._last_pts = pts
        for p in self._vs.encode(vf):
            self._out.mux(p)
        self.frames_written += 1

    def _write_audio(self) -> None:
        a = self._audio_in.streams.audio[0]
        if self.audio["mode"] == "copy":
            for p in self._audio_in.demux(a):
                if p.dts is None:
                    continue
                p.stream = self._as
                self._out.mux(p)
            return
        # Transcoding: decode errors part-way keep the audio up to there (a damaged tail), with a warning.
        try:
            for af in self._audio_in.decode(a):
                af.pts = None  # the encoder counts samples itself; the source's may not start at 0
                for p in self._as.encode(af):
                    self._out.mux(p)
        except av.error.FFmpegError as e:
            log.warning("%s: audio decoding stopped early (%s)", self.target.name, e)
            self.audio["reason"] = f"decoding stopped early ({e})"
        for p in self._as.encode():
            self._out.mux(p)

    def close(self, ok: bool) -> None:
        if self.segmented:
            self._end_segment(flush=ok)
            try:
                if ok:
                    self._join()
            finally:
                if ok or not self.keep_on_failure:
                    for k in range(self._segments + 1):
                        self._segment(k).unlink(missing_ok=True)
            return
        try:
            if ok:
                for p in self._vs.encode():  # flush the encoder's delayed frames
                    self._out.mux(p)
                if self._audio_in is not None:
                    self._write_audio()
        finally:
            self._close_files()

    def _close_files(self) -> None:
        if self._audio_in is not None:
            self._audio_in.close()
            self._audio_in = None
        if self._out is not None:
            self._out.close()
            self._out = None

    def _join(self) -> None:
        """The segments' packets, as they are (no re-encoding), into one mp4 with the source's audio."""
        self._out = av.open(str(self.partial), "w", format="mp4", options={"movflags": "+faststart"})
        try:
            vs = None
            for k in range(self._segments):
                with av.open(str(self._segment(k))) as seg:
                    src = seg.streams.video[0]
                    if vs is None:
                        vs = self._out.add_stream_from_template(src)
                        vs.time_base = self._tb  # the segments' muxer picked its own; packets are rescaled
                        if self.source_path is not None and self.info.has_audio:
                            self._open_audio()
                    for p in seg.demux(src):
                        if p.dts is None:
                            continue
                        p.stream = vs
                        self._out.mux(p)
            if self._audio_in is not None:
                self._write_audio()
        finally:
            self._close_files()


class PngMasksSink(Sink):
    """``masks/00000.png``: palette PNG per frame, pixel value = object id (DAVIS layout).
    Where masks overlap, the object with the higher score wins."""

    def open(self) -> None:
        self.partial.mkdir(parents=True, exist_ok=self.live)
        self._palette = davis_palette()

    def write(self, frame: Frame, masks: FrameMasks) -> None:
        ids = masks.object_ids
        if ids and max(ids) > 255:
            raise ValueError(f"object id {max(ids)} does not fit a palette PNG (0..255): use ids <= 255")
        out = np.zeros(masks.masks.shape[1:], dtype=np.uint8)
        for i in np.argsort(masks.scores, kind="stable"):
            out[masks.masks[i]] = ids[i]
        im = Image.fromarray(out, mode="P")
        im.putpalette(self._palette)
        self._next = frame.index + 1
        name = self.partial / f"{frame.index:05d}.png"
        if self.live:  # a file is either whole or absent, whenever the process dies
            im.save(name.with_suffix(".png.tmp"), format="PNG", compress_level=1)
            os.replace(name.with_suffix(".png.tmp"), name)
        else:
            im.save(name, compress_level=1)
        self.frames_written += 1

    def close(self, ok: bool) -> None:
        pass

    def position(self) -> dict:
        return {"frames": self.frames_written, "next": getattr(self, "_next", 0)}

    def reopen(self, position: dict) -> None:
        self._palette = davis_palette()
        self._next = position["next"]
        _drop_frames_from(self.partial, "*.png", self._next)


class _TextSink(Sink):
    """A sink writing one text file ``self._f``: resumable by its byte offset."""

    def position(self) -> dict:
        self._f.flush()
        return {"frames": self.frames_written, "bytes": self._f.tell()}

    def reopen(self, position: dict) -> None:
        self._f = open(self.partial, "r+", newline="")
        self._f.truncate(position["bytes"])
        self._f.seek(position["bytes"])


class _TrackTextSink(_TextSink):
    """MOT and MOTS text: object classes from their labels, named in ``tracks_labels.txt`` beside it."""

    def __init__(self, target: Path, labels: Mapping[int, str | None] | None = None) -> None:
        super().__init__(target)
        self.labels = labels or {}
        self.classes = _classes(self.labels)

    def close(self, ok: bool) -> None:
        self._f.close()
        if ok:
            _write_class_names(self.target, self.classes)


def _drop_frames_from(folder: Path, pattern: str, first: int) -> None:
    """Remove per-frame files ``<index>.<ext>`` with an index >= ``first`` (written after a checkpoint)."""
    for f in folder.glob(pattern):
        if f.stem.isdigit() and int(f.stem) >= first:
            f.unlink()


def encode_rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


class JsonlSink(_TextSink):
    """``masks.jsonl``: one line per frame with COCO RLE, bbox [x, y, w, h], area and score per object."""

    def __init__(self, target: Path, labels: Mapping[int, str | None] | None = None) -> None:
        super().__init__(target)
        self.labels = labels or {}

    def open(self) -> None:
        self._f = open(self.partial, "w")

    def write(self, frame: Frame, masks: FrameMasks) -> None:
        objects = []
        for oid, m, s in zip(masks.object_ids, masks.masks, masks.scores):
            box = mask_bbox(m)
            objects.append(
                {
                    "id": oid,
                    "label": self.labels.get(oid),
                    "rle": encode_rle(m),
                    "bbox": list(box) if box else None,
                    "area": int(m.sum()),
                    "score": round(float(s), 5) if np.isfinite(s) else None,  # JSON has no NaN
                }
            )
        line = {"frame": frame.index, "time": frame.time, "objects": objects}
        self._f.write(json.dumps(line) + "\n")
        if self.live:
            self._f.flush()
        self.frames_written += 1

    def close(self, ok: bool) -> None:
        self._f.close()


class MotSink(_TrackTextSink):
    """``tracks.csv``: one MOTChallenge row per object whose mask is not empty,
    ``frame, id, x, y, w, h, score, class, visibility``: frames and pixel coordinates from 1 (the box of
    the mask, as MOTChallenge and motmetrics count), ``class`` the 1-based line of the object's label in
    ``tracks_labels.txt`` ("object" when it has none), ``visibility`` 1. These are the columns CVAT's MOT
    1.1 import reads (``gt/gt.txt`` + ``gt/labels.txt``); motmetrics reads the first seven."""

    def open(self) -> None:
        self._f = open(self.partial, "w", newline="")
        self._w = csv.writer(self._f)

    def reopen(self, position: dict) -> None:
        super().reopen(position)
        self._w = csv.writer(self._f)

    def write(self, frame: Frame, masks: FrameMasks) -> None:
        for oid, m, s in zip(masks.object_ids, masks.masks, masks.scores):
            box = mask_bbox(m)
            if box is not None:
                x, y, w, h = box
                cls = _class_index(self.classes, self.labels, oid) + 1
                self._w.writerow([frame.index + 1, oid, x + 1, y + 1, w, h, f"{float(s):.4f}", cls, 1])
        if self.live:
            self._f.flush()
        self.frames_written += 1


def _write_class_names(beside: Path, classes: list[str]) -> None:
    """``tracks_labels.txt`` beside a MOT / MOTS file, in the same staged set: line k names class k."""
    beside.with_name("tracks_labels.txt").write_text("".join(f"{c}\n" for c in classes))


def _classes(labels: Mapping[int, str | None]) -> list[str]:
    """Category names, sorted: the objects' labels, "object" for those without one."""
    return sorted({name or "object" for name in labels.values()} or {"object"})


def _class_index(classes: list[str], labels: Mapping[int, str | None], object_id: int) -> int:
    """The 0-based class of an object. One that joined mid-run may bring "object" with it: it is added
    at the end, so the classes already written keep their numbers."""
    name = labels.get(object_id) or "object"
    if name not in classes:
        classes.append(name)
    return classes.index(name)


class MotsSink(_TrackTextSink):
    """``tracks_mots.txt``: MOTSChallenge rows ``frame id class_id height width rle``, one per object whose
    mask is not empty: frames from 1, ``class_id`` the 1-based line of its label in ``tracks_labels.txt``
    order ("object" when unnamed), ``rle`` COCO's compressed RLE of the mask (pycocotools decodes it)."""

    def open(self) -> None:
        self._f = open(self.partial, "w")

    def write(self, frame: Frame, masks: FrameMasks) -> None:
        h, w = masks.masks.shape[1:]
        for oid, m in zip(masks.object_ids, masks.masks):
            if m.any():
                cls = _class_index(self.classes, self.labels, oid) + 1
                self._f.write(f"{frame.index + 1} {oid} {cls} {h} {w} {encode_rle(m)['counts']}\n")
        if self.live:
            self._f.flush()
        self.frames_written += 1


class CocoSink(Sink):
    """``instances.json``: COCO with a ``videos`` entry, one ``images`` entry per frame (``video_id``,
    ``frame_index``, ``file_name`` = the frame's index as ``00000.jpg``; frames are not written) and one
    annotation per object per frame whose mask is not empty (COCO RLE ``segmentation``, ``bbox``
    [x, y, w, h], ``area``, ``score``, ``track_id`` = object id, ``category_id`` from its label).
    pycocotools' ``COCO`` loads it. Entries stream through temp files: the video is never held."""

    def __init__(self, target: Path, info: VideoInfo, labels: Mapping[int, str | None], video_name: str) -> None:
        super().__init__(target)
        self.info, self.labels, self.video_name = info, labels, video_name
        self.classes = _classes(labels)

    def _parts(self) -> tuple[Path, Path]:
        # Beside the partial output (so a resumed run finds them), removed when it is closed.
        name = self.partial.name
        return self.partial.with_name(name + ".images"), self.partial.with_name(name + ".anns")

    def open(self) -> None:
        images, anns = self._parts()
        self._images = open(images, "w+")
        self._anns = open(anns, "w+")
        self._next_id = 1

    def position(self) -> dict:
        self._images.flush()
        self._anns.flush()
        return {
            "frames": self.frames_written,
            "images": self._images.tell(),
            "anns": self._anns.tell(),
            "next_id": self._next_id,
        }

    def reopen(self, position: dict) -> None:
        images, anns = self._parts()
        self._images, self._anns = open(images, "r+"), open(anns, "r+")
        for f, key in ((self._images, "images"), (self._anns, "anns")):
            f.truncate(position[key])
            f.seek(position[key])
        self._next_id = position["next_id"]

    def write(self, frame: Frame, masks: FrameMasks) -> None:
        image_id = frame.index + 1
        h, w = masks.masks.shape[1:]
        image = {"id": image_id, "video_id": 1, "frame_index": frame.index, "file_name": f"{frame.index:05d}.jpg"}
        self._images.write(json.dumps({**image, "width": w, "height": h}) + "\n")
        for oid, m, s in zip(masks.object_ids, masks.masks, masks.scores):
            box = mask_bbox(m)
            if box is None:
                continue
            ann = {
                "id": self._next_id,
                "image_id": image_id,
                "video_id": 1,
                "track_id": oid,
                "category_id": _class_index(self.classes, self.labels, oid) + 1,
                "segmentation": encode_rle(m),
                "bbox": [float(v) for v in box],
                "area": int(m.sum()),
                "score": round(float(s), 5) if np.isfinite(s) else None,
                "iscrowd": 0,
            }
            self._anns.write(json.dumps(ann) + "\n")
            self._next_id += 1
        self.frames_written += 1

    def close(self, ok: bool) -> None:
        try:
            if ok:
                video = {"id": 1, "name": self.video_name, "width": self.info.width, "height": self.info.height}
                head = {
                    "info": {"description": "tracker (SAM 2) masks", "version": "1.0"},
                    "videos": [{**video, "length": self.frames_written}],
                    "categories": [{"id": i + 1, "name": n} for i, n in enumerate(self.classes)],
                }
                with open(self.partial, "w") as f:
                    f.write(json.dumps(head)[:-1])
                    for key, tmp in (("images", self._images), ("annotations", self._anns)):
                        f.write(f', "{key}": [')
                        tmp.seek(0)
                        for i, line in enumerate(tmp):
                            f.write(("," if i else "") + line.rstrip("\n"))
                        f.write("]")
                    f.write("}\n")
        finally:
            self._images.close()
            self._anns.close()
        if ok or not self.keep_on_failure:
            for part in self._parts():
                part.unlink(missing_ok=True)


def mask_polygon(mask: np.ndarray) -> np.ndarray | None:
    """One polygon (int [P, 2], x y) for a bool mask, as YOLO segmentation labels hold one per object: the
    contours of its parts and of their holes (holes run the other way round, so they stay empty when
    filled), each joined to the polygon so far by a zero-width bridge, there and back, between their two
    closest points (as Ultralytics' own converter merges multi-part masks). None when the mask is empty."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    parts = sorted((c.reshape(-1, 2) for c in contours if len(c) >= 3), key=lambda c: -cv2.contourArea(c))
    if not parts:
        return None
    poly = parts[0]
    for c in parts[1:]:
        d = ((poly[:, None, :].astype(np.int64) - c[None, :, :]) ** 2).sum(-1)
        i, j = np.unravel_index(int(np.argmin(d)), d.shape)
        loop = np.concatenate([c[j:], c[: j + 1]])  # c from its closest point, back to it
        poly = np.concatenate([poly[: i + 1], loop, poly[i:]])
    return poly


class YoloSink(Sink):
    """``yolo/``: Ultralytics segmentation labels. ``labels/<frame>.txt`` holds one line per object whose
    mask is not empty: the class index (from 0) and the normalised polygon (x y pairs in 0..1) of the
    mask (:func:`mask_polygon`); ``data.yaml`` names the classes. Frames themselves are not written."""

    def __init__(self, target: Path, labels: Mapping[int, str | None]) -> None:
        super().__init__(target)
        self.labels = labels
        self.classes = _classes(labels)

    def open(self) -> None:
        (self.partial / "labels").mkdir(parents=True)

    def write(self, frame: Frame, masks: FrameMasks) -> None:
        h, w = masks.masks.shape[1:]
        lines = []
        for oid, m in zip(masks.object_ids, masks.masks):
            poly = mask_polygon(m)
            if poly is None:
                continue
            cls = _class_index(self.classes, self.labels, oid)
            coords = " ".join(f"{x / w:.6f} {y / h:.6f}" for x, y in poly)
            lines.append(f"{cls} {coords}")
        (self.partial / "labels" / f"{frame.index:05d}.txt").write_text("".join(x + "\n" for x in lines))
        self._next = frame.index + 1
        self.frames_written += 1

    def position(self) -> dict:
        return {"frames": self.frames_written, "next": getattr(self, "_next", 0)}

    def reopen(self, position: dict) -> None:
        self._next = position["next"]
        _drop_frames_from(self.partial / "labels", "*.txt", self._next)

    def close(self, ok: bool) -> None:
        if ok:
            names = "".join(f"  {i}: {json.dumps(n)}\n" for i, n in enumerate(self.classes))
            (self.partial / "data.yaml").write_text(
                "# Ultralytics segmentation labels written by tracker (frames are the source video's)\n"
                f"path: .\nnc: {len(self.classes)}\nnames:\n{names}"
            )


def write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(data, indent=1, default=str) + "\n")
    os.replace(tmp, path)
