"""A dataset run: every sequence tracked under the semi-supervised VOS protocol (each object prompted
on the first frame it appears, with its ground-truth mask or a prompt derived from it), predictions
written in the ground truth's layout, then evaluated."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..engine.pipeline import Timings, run_pipeline
from ..engine.propagation import Propagator
from ..engine.types import Passes
from ..io.sinks import AnnotatedVideoSink, Sink, davis_palette
from ..io.source import ImageFolderSource
from ..records import Frame, FrameMasks
from .datasets import VosSequence, first_frame_prompts
from .evaluate import evaluate, format_table, results_dict, write_results

log = logging.getLogger(__name__)


class PredictionSink(Sink):
    """Predicted label maps of the annotated frames, named like the ground truth: palette PNGs
    (DAVIS) or one binary PNG per object (SA-V). Where masks overlap, the higher score wins."""

    def __init__(self, target: Path, seq: VosSequence, layout: str) -> None:
        super().__init__(target)
        self.seq, self.layout = seq, layout

    def open(self) -> None:
        self.partial.mkdir(parents=True)
        self._palette = davis_palette()

    def write(self, frame: Frame, masks: FrameMasks) -> None:
        ann = self.seq.annotations.get(frame.index)
        if ann is None:
            return
        stem = self.seq.frame_files[frame.index].stem
        lab = np.zeros(masks.masks.shape[1:], dtype=np.uint8)
        for i in np.argsort(masks.scores, kind="stable"):
            lab[masks.masks[i]] = masks.object_ids[i]
        if self.layout == "davis":
            im = Image.fromarray(lab, mode="P")
            im.putpalette(self._palette)
            im.save(self.partial / f"{stem}.png")
        else:
            for oid in sorted(ann):
                d = self.partial / f"{oid:03d}"
                d.mkdir(exist_ok=True)
                Image.fromarray(((lab == oid) * 255).astype(np.uint8), mode="L").save(d / f"{stem}.png")
        self.frames_written += 1

    def close(self, ok: bool) -> None:
        pass


def run_dataset(
    model,
    sequences: Sequence[VosSequence],
    out_dir: Path,
    layout: str,
    prompt: str = "mask",
    annotated_video: bool = False,
    reverse_chunk: int = 16,
    prefetch: int = 8,
    progress: bool = False,
    memory: Callable[[], Any] | None = None,
) -> tuple[dict, Timings]:
    """Track, write predictions under ``out_dir/predictions``, evaluate; returns (results, timings).
    ``memory``: makes each sequence's memory policy (None: SAM 2's)."""
    pred_root = Path(out_dir) / "predictions"
    pred_root.mkdir(parents=True, exist_ok=True)
    total = Timings()
    t0 = time.perf_counter()
    for seq in sequences:
        prompts = list(first_frame_prompts(seq, prompt))
        source = ImageFolderSource(seq.frame_files[0].parent)
        if source.info.num_frames != len(seq.frame_files):
            raise ValueError(f"sequence {seq.name}: the frame folder holds other images than the frames")
        ids = sorted({p.object_id for p in prompts})
        sinks: list[Sink] = [PredictionSink(pred_root / seq.name, seq, layout)]
        if annotated_video:
            (Path(out_dir) / "videos").mkdir(exist_ok=True)
            sinks.append(AnnotatedVideoSink(Path(out_dir) / "videos" / f"{seq.name}.mp4", source.info, None))
        passes = Passes(backward=False, reverse_chunk=reverse_chunk, prefetch=prefetch)  # the VOS protocol
        propagator = Propagator(model, memory() if memory else None, passes=passes)
        model.seconds = 0.0
        tm = run_pipeline(propagator, source, prompts, ids, sinks, progress=progress)
        for k in ("decode_s", "model_s", "encode_s"):
            setattr(total, k, getattr(total, k) + getattr(tm, k))
        total.frames += tm.frames
        log.info("%s: %d objects, %d frames, %.2f fps", seq.name, len(ids), tm.frames, tm.frames / max(tm.wall_s, 1e-9))
    total.wall_s = time.perf_counter() - t0
    results = results_dict(evaluate(pred_root, sequences))
    write_results(Path(out_dir), results)
    print(format_table(results), flush=True)
    return results, total
