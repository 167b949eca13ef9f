"""VOS datasets: the DAVIS and SA-V layouts, read as sequences with ground truth, and prompts derived
from each object's mask on the first frame it appears (the semi-supervised protocol).

DAVIS:  ROOT/JPEGImages/<res>/<seq>/*.jpg, ROOT/Annotations/<res>/<seq>/*.png (palette, pixel = id),
        ROOT/ImageSets/<year>/<split>.txt
SA-V:   ROOT/JPEGImages_24fps/<video>/*.jpg, ROOT/Annotations_6fps/<video>/<obj>/*.png (one binary
        mask per object, on every 4th frame), ROOT/<split>.txt (optional; else every video)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from ..masks import ImageError, check_pixels
from ..records import Prompt


class DatasetError(ValueError):
    """The dataset on disk does not have the layout it claims."""


@dataclass(frozen=True)
class VosSequence:
    """One sequence: frame files in order, and the annotated frames' ground truth (lazy)."""

    name: str
    frame_files: tuple[Path, ...]
    # frame index -> annotation: a palette PNG (DAVIS) or {object id: PNG} (SA-V)
    annotations: dict[int, Path | dict[int, Path]]

    @property
    def annotated(self) -> list[int]:
        return sorted(self.annotations)

    def label_map(self, t: int) -> np.ndarray:
        """uint8 [H, W] ground truth of annotated frame t (pixel = object id)."""
        ann = self.annotations[t]
        if isinstance(ann, Path):
            return read_png(ann, self.name)
        lab: np.ndarray | None = None
        for oid in sorted(ann):
            m = read_png(ann[oid], self.name) > 0
            if lab is None:
                lab = np.zeros(m.shape, dtype=np.uint8)
            lab[m] = oid
        assert lab is not None
        return lab


def read_png(path: Path, seq: str) -> np.ndarray:
    """A label PNG as uint8 [H, W] (pixel = object id): palette or grey values as they are, RGB(A)
    colours mapped back to ids through the DAVIS palette; DatasetError naming the sequence and file."""
    try:
        with Image.open(path) as im:
            check_pixels(im.width, im.height, str(path))
            if im.mode in ("P", "L"):
                return np.asarray(im)
            if im.mode in ("RGB", "RGBA"):
                return _ids_from_colours(np.asarray(im.convert("RGB")), path, seq)
            return np.asarray(im.convert("L"))
    except ImageError as e:
        raise DatasetError(f"sequence {seq}: {e}") from None
    except DatasetError:
        raise
    except (OSError, SyntaxError, ValueError):
        raise DatasetError(f"sequence {seq}: {path} is not a readable PNG: replace or re-export it") from None


def _ids_from_colours(rgb: np.ndarray, path: Path, seq: str) -> np.ndarray:
    from ..io.sinks import davis_palette

    pal = np.asarray(davis_palette(), dtype=np.int64).reshape(256, 3)
    key = lambda a: (a[..., 0] << 16) | (a[..., 1] << 8) | a[..., 2]  # noqa: E731
    lookup = {int(k): i for i, k in reversed(list(enumerate(key(pal))))}
    colours, inverse = np.unique(key(rgb.astype(np.int64)).ravel(), return_inverse=True)
    unknown = [int(c) for c in colours if int(c) not in lookup]
    if unknown:
        c = unknown[0]
        raise DatasetError(
            f"sequence {seq}: {path} is an RGB image with the colour {(c >> 16, (c >> 8) & 255, c & 255)}, "
            "which is not in the DAVIS palette: save label maps as palette or grey PNGs (pixel = object id)"
        )
    ids = np.array([lookup[int(c)] for c in colours], dtype=np.uint8)
    return ids[inverse].reshape(rgb.shape[:2])


def _frames(folder: Path, seq: str) -> tuple[Path, ...]:
    if not folder.is_dir():
        raise DatasetError(f"sequence {seq}: frame folder {folder} does not exist")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not files:
        raise DatasetError(f"sequence {seq}: no frames in {folder}")
    return tuple(files)


def _image_size(path: Path) -> tuple[int, int]:
    try:
        with Image.open(path) as im:
            return im.size
    except (OSError, SyntaxError, ValueError):
        raise DatasetError(f"{path} is not a readable image: replace or re-export it") from None


def _check(seq: VosSequence) -> VosSequence:
    """Every annotation names an existing frame and has the frame's size; the first frame is annotated."""
    w, h = _image_size(seq.frame_files[0])
    for ann in seq.annotations.values():
        for p in [ann] if isinstance(ann, Path) else list(ann.values()):
            if _image_size(p) != (w, h):
                raise DatasetError(
                    f"sequence {seq.name}: annotation {p} is {_image_size(p)[0]}x{_image_size(p)[1]} but the "
                    f"frames are {w}x{h}: ground truth must match the frames"
                )
    if 0 not in seq.annotations:
        raise DatasetError(f"sequence {seq.name}: the first frame {seq.frame_files[0].name} has no annotation")
    return seq


def davis_sequences(root: Path, resolution: str = "480p", split: str = "val", year: str = "2017") -> list[VosSequence]:
    root = Path(root)
    listing = root / "ImageSets" / year / f"{split}.txt"
    if not listing.is_file():
        raise DatasetError(f"DAVIS split file {listing} does not exist: check dataset.root and dataset.split")
    names = [x.strip() for x in listing.read_text().splitlines() if x.strip()]
    out = []
    for name in names:
        frames = _frames(root / "JPEGImages" / resolution / name, name)
        ann_dir = root / "Annotations" / resolution / name
        if not ann_dir.is_dir():
            raise DatasetError(f"sequence {name}: annotation folder {ann_dir} does not exist")
        anns = {}
        index = {f.stem: i for i, f in enumerate(frames)}
        for p in sorted(ann_dir.glob("*.png")):
            if p.stem not in index:
                raise DatasetError(f"sequence {name}: annotation {p.name} has no frame {p.stem}.jpg")
            anns[index[p.stem]] = p
        missing = [f.stem for f in frames if f.stem not in {p.stem for p in anns.values()}]
        if missing:
            raise DatasetError(
                f"sequence {name}: ground truth is missing for frame {missing[0]} ({len(missing)} frames): "
                f"expected {ann_dir / (missing[0] + '.png')}"
            )
        out.append(_check(VosSequence(name, frames, anns)))
    return out


def sav_sequences(root: Path, split: str | None = None) -> list[VosSequence]:
    root = Path(root)
    ann_root = root / "Annotations_6fps"
    if not ann_root.is_dir():
        raise DatasetError(f"SA-V annotation folder {ann_root} does not exist: check dataset.root")
    listing = root / f"{split}.txt" if split else None
    if listing is not None and listing.is_file():
        names = [x.strip() for x in listing.read_text().splitlines() if x.strip()]
    else:
        names = sorted(p.name for p in ann_root.iterdir() if p.is_dir())
    out = []
    for name in names:
        frames = _frames(root / "JPEGImages_24fps" / name, name)
        index = {f.stem: i for i, f in enumerate(frames)}
        anns: dict[int, dict[int, Path]] = {}
        for obj_dir in sorted(p for p in (ann_root / name).iterdir() if p.is_dir()):
            oid = int(obj_dir.name)
            for p in sorted(obj_dir.glob("*.png")):
                if p.stem not in index:
                    raise DatasetError(f"sequence {name}: annotation {obj_dir.name}/{p.name} has no frame {p.stem}")
                anns.setdefault(index[p.stem], {})[oid] = p
        out.append(_check(VosSequence(name, frames, anns)))
    return out


def load_sequences(
    layout: str, root: str | Path, split: str = "val", resolution: str = "480p", shard: int = 0, num_shards: int = 1
) -> list[VosSequence]:
    """The dataset's sequences, restricted to shard ``shard`` of ``num_shards`` (by position)."""
    if not 0 <= shard < num_shards:
        raise DatasetError(f"dataset.shard={shard} is outside 0..{num_shards - 1}: pick a shard below num_shards")
    if layout == "davis":
        seqs = davis_sequences(Path(root), resolution, split)
    elif layout == "sav":
        seqs = sav_sequences(Path(root), split)
    else:
        raise DatasetError(f"dataset layout {layout!r} is unknown: use davis or sav")
    return seqs[shard::num_shards]


# ---- prompts from ground truth ---------------------------------------------------------------------


def _interior_points(mask: np.ndarray, k: int) -> list[tuple[float, float]]:
    """k clicks inside the mask: the most interior pixel, then pixels far from the chosen ones and
    from the boundary (deterministic, like an annotator spreading clicks)."""
    dist = cv2.distanceTransform(np.pad(mask, 1).astype(np.uint8), cv2.DIST_L2, 5)[1:-1, 1:-1]
    ys, xs = np.nonzero(mask)
    chosen: list[tuple[float, float]] = []
    for _ in range(k):
        score = dist[ys, xs].astype(np.float64)
        for cx, cy in chosen:
            score = score * np.minimum(1.0, np.hypot(xs - cx, ys - cy) / (dist.max() * 2 + 1e-6))
        i = int(np.argmax(score))
        chosen.append((float(xs[i]), float(ys[i])))
    return chosen


def prompt_from_mask(object_id: int, frame: int, mask: np.ndarray, kind: str) -> Prompt:
    """A prompt of the given kind (mask, box, click1, click3) derived from a ground-truth mask."""
    if kind == "mask":
        return Prompt(object_id, frame, mask=mask)
    ys, xs = np.nonzero(mask)
    if kind == "box":
        return Prompt(
            object_id, frame, box=(float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
        )
    if kind in ("click1", "click3"):
        pts = _interior_points(mask, 1 if kind == "click1" else 3)
        return Prompt(object_id, frame, points=tuple((x, y, 1) for x, y in pts))
    raise DatasetError(f"dataset.prompt={kind!r} is unknown: use mask, box, click1 or click3")


def first_frame_prompts(seq: VosSequence, kind: str = "mask") -> Iterator[Prompt]:
    """One prompt per object, on the first annotated frame where it appears."""
    seen: set[int] = set()
    for t in seq.annotated:
        lab = seq.label_map(t)
        for oid in sorted(set(np.unique(lab).tolist()) - {0} - seen):
            seen.add(oid)
            yield prompt_from_mask(int(oid), t, lab == oid, kind)


def gt_sequences(gt_dir: str | Path, layout: str = "davis") -> list[VosSequence]:
    """Ground truth alone (no frames), for evaluating a prediction folder: ``gt_dir/<seq>/*.png``
    (DAVIS palette) or ``gt_dir/<video>/<obj>/*.png`` (SA-V). Numbered DAVIS frames must not skip."""
    gt_dir = Path(gt_dir)
    if not gt_dir.is_dir():
        raise DatasetError(f"ground-truth folder {gt_dir} does not exist: pass gt=DIR")
    out = []
    for folder in sorted(p for p in gt_dir.iterdir() if p.is_dir()):
        name = folder.name
        if layout == "davis":
            files = sorted(folder.glob("*.png"))
            if not files:
                raise DatasetError(f"sequence {name}: no ground-truth PNGs in {folder}")
            if all(f.stem.isdigit() for f in files):
                nums = [int(f.stem) for f in files]
                width = len(files[0].stem)
                for a, b in zip(nums, nums[1:]):
                    if b != a + 1:
                        raise DatasetError(
                            f"sequence {name}: ground truth is missing frame {str(a + 1).zfill(width)}.png "
                            f"(between {files[0].stem} and {files[-1].stem})"
                        )
            seq = VosSequence(name, tuple(files), {i: f for i, f in enumerate(files)})
        elif layout == "sav":
            per_obj = {int(d.name): {f.stem: f for f in d.glob("*.png")} for d in folder.iterdir() if d.is_dir()}
            stems = sorted({s for d in per_obj.values() for s in d})
            if not stems:
                raise DatasetError(f"sequence {name}: no ground-truth PNGs in {folder}")
            anns = {i: {o: d[s] for o, d in per_obj.items() if s in d} for i, s in enumerate(stems)}
            frames = tuple(next(iter(a.values())) for a in anns.values())
            seq = VosSequence(name, frames, anns)
        else:
            raise DatasetError(f"layout {layout!r} is unknown: use davis or sav")
        out.append(_check(seq))
    if not out:
        raise DatasetError(f"ground-truth folder {gt_dir} has no sequence folders")
    return out
