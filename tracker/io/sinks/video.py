"""``annotated.mp4``: the frames with the masks drawn on them, the source's timestamps and audio."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from ...records import Frame, FrameMasks, VideoInfo, whole
from ...settings import choice, integer, number
from ..annotation import annotate
from .base import Sink, register

log = logging.getLogger("tracker.io.sinks")

X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")


@dataclass(frozen=True)
class VideoSettings:
    """``sink.crf`` (libx264 quality, lower is better and bigger), ``sink.preset`` (libx264 speed) and
    ``sink.alpha`` (mask fill opacity): the annotated video's own keys."""

    crf: int = 20
    preset: str = "veryfast"
    alpha: float = 0.45

    def __post_init__(self) -> None:
        integer("sink.crf", self.crf, 0, 51, example=20)
        choice("sink.preset", self.preset, X264_PRESETS)
        number("sink.alpha", self.alpha, 0.0, 1.0)


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

    def make_resumable(self) -> AnnotatedVideoSink:
        super().make_resumable()
        self.segmented = True
        return self

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

    def check_position(self, position: Any, emitted: int) -> str | None:
        problem = super().check_position(position, emitted)
        if problem is not None:
            return problem
        segments, pts = position.get("segments"), position.get("last_pts")
        if not whole(segments) or not 0 <= segments <= emitted:
            return f"segments={segments!r}, not 0 to {emitted}"
        missing = next((k for k in range(segments) if not self._segment(k).is_file()), None)
        if missing is not None:
            return f"segment {missing} of {segments} is missing"
        return None if whole(pts) and pts >= -1 else f"last_pts={pts!r}"

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


register(
    "annotated",
    ("annotated.mp4",),
    lambda c: AnnotatedVideoSink(
        c.folder / "annotated.mp4",
        c.info,
        c.audio_from,
        labels=c.labels,
        crf=c.settings["annotated"].crf,
        preset=c.settings["annotated"].preset,
        alpha=c.settings["annotated"].alpha,
    ),
    settings=VideoSettings,
)
