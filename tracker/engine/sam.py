"""SAM 2 for the rest of the package: model building, checkpoints, and SAM 2's per-frame steps. Only this
module and :mod:`tracker.engine.sam2_port` (the pieces of upstream ported to run many objects per call,
each naming the function it follows) import sam2 or drive its network.

Everything here calls SAM 2's own modules (``SAM2Base.track_step``, ``forward_image``, the prompt encoder
and mask decoder) or the ported pieces, so that results are those of upstream ``SAM2VideoPredictor``;
what this module replaces is upstream's state keeping, which lives in :mod:`tracker.engine.propagation`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from sam2.modeling.sam2_base import NO_OBJ_SCORE as _SAM2_NO_OBJ_SCORE

from ..masks import fill_holes
from . import sam2_port
from .types import NO_OBJ_SCORE, Candidates, Judge, MemoryEntry, TrackRequest

log = logging.getLogger(__name__)

assert NO_OBJ_SCORE == _SAM2_NO_OBJ_SCORE, "tracker.engine.types.NO_OBJ_SCORE must be sam2's"

_IMG_MEAN = (0.485, 0.456, 0.406)
_IMG_STD = (0.229, 0.224, 0.225)


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable or does not fit the model config."""


def pick_device(name: str = "auto") -> torch.device:
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def build_sam2(arch: Mapping[str, Any], checkpoint: str | None, device: torch.device) -> torch.nn.Module:
    """Instantiate ``arch`` (SAM 2's ``model:`` node, as a plain dict) and load ``checkpoint``.

    ``checkpoint=None`` keeps the random initialisation and warns: for tests and benchmarks only.
    """
    from hydra.utils import instantiate

    if arch.get("non_overlap_masks_for_mem_enc", False):
        # It mixes objects within a batch; upstream runs one object per batch, we batch them.
        raise ValueError(
            "model.arch.model.non_overlap_masks_for_mem_enc=true is not supported: objects are batched; set it to false"
        )
    model = instantiate(dict(arch), _recursive_=True)
    if checkpoint is None:
        warnings.warn(
            "model.checkpoint is null: SAM 2 runs with RANDOM weights, its masks are noise "
            "(fine for tests and benchmarks; pass model.checkpoint=PATH for real tracking)",
            stacklevel=2,
        )
    else:
        load_checkpoint(model, checkpoint)
    return model.to(device).eval()


def resolve_checkpoint(path: str | Path) -> Path:
    """A path, or ``pkg://PACKAGE/file`` for a checkpoint shipped inside an installed package."""
    text = str(path)
    if text.startswith("pkg://"):
        from importlib.resources import files

        package, _, rel = text[len("pkg://") :].partition("/")
        return Path(str(files(package) / rel))
    return Path(text)


def existing_checkpoint(path: str | Path) -> Path:
    """The checkpoint's file (``pkg://`` resolved); CheckpointError when there is none."""
    resolved = resolve_checkpoint(path)
    if resolved.is_dir():
        raise CheckpointError(f"checkpoint {str(resolved)!r} is a folder: give the checkpoint file in it (.pt)")
    if resolved.exists() and not resolved.is_file():
        raise CheckpointError(
            f"checkpoint {str(resolved)!r} is not a regular file (a device or a pipe): give the path of a .pt file"
        )
    if not resolved.is_file():
        raise CheckpointError(
            f"checkpoint {str(resolved)!r} does not exist: give the path of an existing .pt "
            "(or leave model.checkpoint out: `tracker-download NAME` caches the checkpoint of model=NAME)"
        )
    return resolved


def load_checkpoint(model: torch.nn.Module, path: str | Path) -> None:
    """Load a Meta-format checkpoint (``{"model": state_dict}``) with a strict key check."""
    path = existing_checkpoint(path)
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for corrupt files
        raise CheckpointError(
            f"checkpoint {str(path)!r} cannot be read ({type(e).__name__}): the file is corrupt or not a "
            "PyTorch checkpoint; download it again"
        ) from None
    state = blob.get("model") if isinstance(blob, dict) else None
    if not isinstance(state, Mapping):
        raise CheckpointError(
            f"checkpoint {str(path)!r} has no 'model' state dict: expected SAM 2's format {{'model': ...}}"
        )
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or wrong:
        detail = []
        if missing:
            detail.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            detail.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if wrong:
            k = wrong[0]
            detail.append(f"{len(wrong)} of wrong shape (e.g. {k} {tuple(state[k].shape)} != {tuple(own[k].shape)})")
        raise CheckpointError(
            f"checkpoint {str(path)!r} does not fit the model config: {', '.join(detail)}; "
            "pick the model= that the checkpoint was trained for"
        )
    model.load_state_dict(state, strict=True)
    log.info("loaded checkpoint %s", path)


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def compute_dtype(name: str) -> torch.dtype:
    """``model.dtype``: float32 (exact), bfloat16 or float16 (autocast)."""
    if name not in DTYPES:
        raise ValueError(f"model.dtype={name!r} is unknown: use one of {', '.join(DTYPES)}")
    return DTYPES[name]


@dataclass
class ImageFeatures:
    """Backbone output of one frame (batch 1), computed once and shared by every object group, with the
    per-frame work that is the same for every object, made once on first use (batch 1):

    ``vision``: SAM 2's flattened features / positions / sizes (``_prepare_backbone_features``);
    ``proj``: the memory encoder's projection of the top-level features, float [1, C, H, W];
    ``sa0``: the first memory-attention layer's self-attention output, float [1, HW, C]."""

    backbone_out: dict[str, Any]
    vision: tuple[list[torch.Tensor], list[torch.Tensor], list[tuple[int, int]]] | None = None
    proj: torch.Tensor | None = None
    sa0: torch.Tensor | None = None

    def expand(self, batch: int) -> dict[str, list[torch.Tensor]]:
        return {
            "backbone_fpn": [x.expand(batch, -1, -1, -1) for x in self.backbone_out["backbone_fpn"]],
            "vision_pos_enc": [x.expand(batch, -1, -1, -1) for x in self.backbone_out["vision_pos_enc"]],
        }


@contextlib.contextmanager
def _fp32_precision(precision: str):
    """CUDA float32 matmuls and convolutions at ``precision`` ("tf32" or "ieee") while SAM 2 runs, the
    caller's settings back after (they are the process's: a Python caller keeps its own)."""
    matmul = torch.backends.cuda.matmul
    if hasattr(matmul, "fp32_precision"):
        conv, key, value = torch.backends.cudnn.conv, "fp32_precision", precision
    else:  # torch < 2.9: the legacy flags only
        conv, key, value = torch.backends.cudnn, "allow_tf32", precision == "tf32"
    saved = getattr(matmul, key), getattr(conv, key)
    setattr(matmul, key, value)
    setattr(conv, key, value)
    try:
        yield
    finally:
        setattr(matmul, key, saved[0])
        setattr(conv, key, saved[1])


def _timed(fn):
    @functools.wraps(fn)
    def wrapper(self, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(self, *args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - t0

    return wrapper


class SamModel:
    """SAM 2 with the per-frame operations the streaming propagator needs.

    Tensor conventions: S = ``image_size``; frames enter as float32 [3, S, S], normalised.
    """

    def __init__(
        self,
        net: torch.nn.Module,
        device: torch.device,
        fill_hole_area: int = 0,
        compile: bool = False,
        dtype: str = "float32",
        tf32: bool = False,
        kv_cache: bool = False,
    ) -> None:
        self.net = net
        self.device = device
        self.dtype = compute_dtype(dtype)
        # TF32 (CUDA, float32 only): matmuls and convolutions with 10-bit mantissas on tensor cores, as
        # upstream's examples enable on Ampere and newer; off, the process's own settings (torch's defaults),
        # which is what upstream's predictor runs with in the same process.
        self.tf32 = bool(tf32) and device.type == "cuda" and self.dtype == torch.float32
        # Hole filling changes the masks that users see, and (as upstream) the memory of prompt
        # frames; on tracked frames it is applied to the outputs only (tracker.masks.fill_holes).
        self.fill_hole_area = int(fill_hole_area)
        # Memory attention's values of a memory frame kept with its entry (the same numbers, made once
        # instead of on every frame that reads it): 1-9 % of attention's time for 4 layers x 4x the channels
        # in float32, 32 times the bfloat16 memory's own size: off unless asked for (model.kv_cache)
        self.kv_cache = bool(kv_cache)
        self.image_size: int = int(net.image_size)
        self.num_maskmem: int = int(net.num_maskmem)
        self.stride: int = int(net.memory_temporal_stride_for_eval)
        self.max_obj_ptrs: int = int(net.max_obj_ptrs_in_encoder) if net.use_obj_ptrs_in_encoder else 0
        self._mean = torch.tensor(_IMG_MEAN, device=device)[:, None, None]
        self._std = torch.tensor(_IMG_STD, device=device)[:, None, None]
        self._maskmem_pos: torch.Tensor | None = None
        self.seconds = 0.0  # time spent in SAM 2 (image encoder, prompts, tracking, upsampling)
        self.batches = 0  # tracking calls to SAM 2's heads (one per bucket of objects per frame)
        # of self.seconds, in those calls' decoder (with a memory policy's verdict and retries): where a
        # policy's own work is, timed apart from the rest of the frame (bench_long_video.py)
        self.heads_seconds = 0.0
        self.compiled: tuple[str, ...] = _compile(self, net, device) if compile else ()

    @property
    def compile_seconds(self) -> float:
        """Seconds spent compiling (0.0 without model.compile): the process's torch.compile time."""
        return compile_seconds() if self.compiled else 0.0

    # Points per automatic prompt (model.auto_points): SAM 2 segments from one; the toy needs three.
    auto_points: int = 1

    @property
    def _heads_in_float32(self) -> bool:
        return self.device.type == "cpu" and self.dtype != torch.float32

    @property
    def memory_dtype(self) -> torch.dtype:
        # Upstream stores memories in bfloat16 whatever it computes in; float16 keeps its own (a bfloat16
        # memory next to float16 pointers is upstream's dtype crash).
        return torch.float16 if self.dtype == torch.float16 else torch.bfloat16

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """float32: nothing (on CUDA with :attr:`tf32`: TF32 matmuls and convolutions); bfloat16 / float16:
        autocast on the model's device (CPU, CUDA, MPS)."""
        if self.dtype == torch.float32:
            return _fp32_precision("tf32") if self.tf32 else contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    # ---- images -------------------------------------------------------------------------
    def resize(self, rgb: np.ndarray) -> np.ndarray:
        """uint8 [H, W, 3] -> uint8 [S, S, 3]. OpenCV only, so it can run in the decode thread
        (torch ops there would fight the model's own threads for the cores)."""
        s = self.image_size
        h, w = rgb.shape[:2]
        interp = cv2.INTER_AREA if (h > s or w > s) else cv2.INTER_LINEAR
        return cv2.resize(rgb, (s, s), interpolation=interp)

    @torch.inference_mode()
    def to_input(self, small: np.ndarray) -> torch.Tensor:
        """uint8 [S, S, 3] -> float32 [3, S, S] normalised, on the model's device."""
        x = torch.from_numpy(small).to(self.device).permute(2, 0, 1).contiguous().float().div_(255.0)
        return (x - self._mean) / self._std

    def preprocess(self, rgb: np.ndarray) -> torch.Tensor:
        """uint8 [H, W, 3] -> float32 [3, S, S] normalised, on the model's device."""
        return self.to_input(self.resize(rgb))

    @_timed
    @torch.inference_mode()
    def image_features(self, image: torch.Tensor) -> ImageFeatures:
        """image: float32 [3, S, S] -> backbone features (batch 1)."""
        with self.autocast():
            return ImageFeatures(self.net.forward_image(image.unsqueeze(0)))

    def backbone_features(self, feats: ImageFeatures):
        """SAM 2's flattened vision features [HW, 1, C] per level, their positions and sizes, made once per
        frame (a batch of objects broadcasts them)."""
        if feats.vision is None:
            _, vision_feats, vision_pos, sizes = self.net._prepare_backbone_features(feats.expand(1))
            feats.vision = (vision_feats, vision_pos, sizes)
        vision_feats, vision_pos, sizes = feats.vision
        return list(vision_feats), list(vision_pos), list(sizes)

    def prompt_frame_features(self, feats: ImageFeatures) -> torch.Tensor:
        """The frame's top-level features as a prompt frame reads them, without memory (``no_mem_embed``
        added when the model adds it): [1, C, H, W]."""
        vision_feats, _, sizes = self.backbone_features(feats)
        top = vision_feats[-1]
        if self.net.directly_add_no_mem_embed:
            top = top + self.net.no_mem_embed
        return top.permute(1, 2, 0).reshape(1, -1, *sizes[-1])

    # ---- prompt frames --------------------------------------------------------------------
    def _prompt_outputs(
        self,
        feats: ImageFeatures,
        frame_index: int,
        video_size: tuple[int, int],
        points: np.ndarray | None,
        labels: np.ndarray | None,
        mask: np.ndarray | None,
    ):
        """SAM 2's outputs for one object's prompt on a frame, without memory (upstream's add_new_mask
        and/or add_new_points_or_box): returns (vision features, track_step output, low-res logits
        float32 [1, 1, S/4, S/4], hole-filled as upstream stores them)."""
        vision_feats, vision_pos, sizes = self.backbone_features(feats)
        s = self.image_size
        video_h, video_w = video_size
        out: dict[str, Any] | None = None
        if mask is not None:
            m = torch.from_numpy(np.ascontiguousarray(mask)).to(self.device)[None, None].float()
            if m.shape[-2:] != (s, s):
                m = F.interpolate(m, size=(s, s), mode="bilinear", align_corners=False, antialias=True)
                m = (m >= 0.5).float()
            out = self._track(frame_index, vision_feats, vision_pos, sizes, mask_inputs=m)
        if points is not None and len(points):
            pts = torch.as_tensor(points, dtype=torch.float32)[None]
            pts = pts / torch.tensor([video_w, video_h], dtype=torch.float32)
            pts = (pts * s).to(self.device)
            lab = torch.as_tensor(labels, dtype=torch.int32)[None].to(self.device)
            prev = None
            if out is not None:
                prev = torch.clamp(out["pred_masks"], -32.0, 32.0)
            point_inputs = {"point_coords": pts, "point_labels": lab}
            out = self._track(frame_index, vision_feats, vision_pos, sizes, point_inputs, prev_logits=prev)
        if out is None:
            raise ValueError(f"frame {frame_index}: empty prompt: give points, a box or a mask")
        low_res = out["pred_masks"].float()
        if self.fill_hole_area > 0:
            filled = fill_holes(low_res[:, 0].cpu().numpy(), self.fill_hole_area)
            low_res = torch.from_numpy(filled)[:, None].to(low_res.device)
        return vision_feats, sizes, out, low_res

    def multimask_for(self, points_per_prompt: int) -> bool:
        """Whether SAM 2 answers a prompt of this many points with its three multimask outputs (as its
        automatic mask generator keeps them all)."""
        return bool(self.net.multimask_output_in_sam) and points_per_prompt <= self.net.multimask_max_pt_num

    @torch.inference_mode()
    def decode_points(
        self, feats: ImageFeatures, points: np.ndarray, batch: int, multimask: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Positive point prompts without memory (a prompt frame's decoding, as SAM 2's automatic mask
        generator runs it): ``points`` float32 [N, K, 2] as fractions of the frame, decoded ``batch`` prompts
        at a time. Returns (low-res logits float32 [N*M, S/4, S/4], predicted IoU float32 [N*M]), M = 3 if
        ``multimask`` else 1."""
        net = self.net
        vision_feats, _, sizes = self.backbone_features(feats)
        pix = self.prompt_frame_features(feats)
        high_res = None
        if net.use_high_res_features_in_sam:
            high_res = [x.permute(1, 2, 0).view(1, -1, *sz) for x, sz in zip(vision_feats[:-1], sizes[:-1])]
        pe = net.sam_prompt_encoder.get_dense_pe()
        logits, ious = [], []
        grid = torch.from_numpy(points).to(self.device) * self.image_size
        with self.autocast():
            for i in range(0, len(grid), batch):
                pts = grid[i : i + batch]
                labels = torch.ones(pts.shape[:2], dtype=torch.int32, device=self.device)
                sparse, dense = net.sam_prompt_encoder(points=(pts, labels), boxes=None, masks=None)
                low, iou, _, _ = net.sam_mask_decoder(
                    image_embeddings=pix,
                    image_pe=pe,
                    sparse_prompt_embeddings=sparse,
                    dense_prompt_embeddings=dense,
                    multimask_output=multimask,
                    repeat_image=True,
                    high_res_features=high_res,
                )
                logits.append(low.float().flatten(0, 1))
                ious.append(iou.float().flatten(0, 1))
        return torch.cat(logits), torch.cat(ious)

    @_timed
    @torch.inference_mode()
    def preview(
        self,
        feats: ImageFeatures,
        frame_index: int,
        video_size: tuple[int, int],
        points: np.ndarray | None,
        labels: np.ndarray | None,
        mask: np.ndarray | None,
    ) -> tuple[np.ndarray, float]:
        """The mask one prompt gives on its frame, as its prompt frame's output in a run: the low-res
        logits float32 [S/4, S/4] (upsample with ``masks.to_video_masks``) and the object score logit.
        Arguments as :meth:`encode_prompt`."""
        with self.autocast():
            _, _, out, low_res = self._prompt_outputs(feats, frame_index, video_size, points, labels, mask)
        return low_res[0, 0].cpu().numpy(), float(out["object_score_logits"].float().reshape(-1)[0])

    @_timed
    @torch.inference_mode()
    def encode_prompt(
        self,
        feats: ImageFeatures,
        frame_index: int,
        video_size: tuple[int, int],
        points: np.ndarray | None,
        labels: np.ndarray | None,
        mask: np.ndarray | None,
    ) -> MemoryEntry:
        """Encode one object's prompt on a prompt frame, as upstream's add_new_points_or_box /
        add_new_mask followed by propagate_in_video_preflight do (no memory of other frames).

        points: float32 [P, 2] in video pixels (a box comes first as labels 2, 3); labels int32 [P];
        mask: bool [H, W] at video resolution.
        """
        s = self.image_size
        with self.autocast():
            vision_feats, sizes, out, low_res = self._prompt_outputs(
                feats, frame_index, video_size, points, labels, mask
            )
            # Upstream's preflight encodes the memory of a prompt frame from its stored low-res
            # masks (hole-filled), upsampled, always as "mask from points".
            high_res = F.interpolate(low_res, size=(s, s), mode="bilinear", align_corners=False)
            maskmem, pos = self.net._encode_new_memory(
                current_vision_feats=vision_feats,
                feat_sizes=sizes,
                pred_masks_high_res=high_res,
                object_score_logits=out["object_score_logits"],
                is_mask_from_pts=True,
            )
        self._remember_pos(pos)
        return MemoryEntry(
            maskmem=maskmem.to(self.memory_dtype),
            obj_ptr=out["obj_ptr"],
            low_res=low_res,
            score=out["object_score_logits"].float(),
        )

    def _track(
        self,
        frame_index: int,
        vision_feats: list[torch.Tensor],
        vision_pos: list[torch.Tensor],
        sizes: list[tuple[int, int]],
        point_inputs: dict[str, torch.Tensor] | None = None,
        mask_inputs: torch.Tensor | None = None,
        prev_logits: torch.Tensor | None = None,
        output_dict: dict[str, dict] | None = None,
        num_frames: int = 1 << 30,
        reverse: bool = False,
    ) -> dict[str, Any]:
        """SAM 2's track_step. Without ``output_dict`` it is a prompt frame's first encoding (no memory,
        memory encoder run later, as upstream's add_new_* then preflight); with it, a tracked frame."""
        prompt_frame = output_dict is None
        return self.net.track_step(
            frame_idx=frame_index,
            is_init_cond_frame=prompt_frame,
            current_vision_feats=vision_feats,
            current_vision_pos_embeds=vision_pos,
            feat_sizes=sizes,
            point_inputs=point_inputs,
            mask_inputs=mask_inputs,
            output_dict=output_dict or {"cond_frame_outputs": {}, "non_cond_frame_outputs": {}},
            num_frames=num_frames,
            track_in_reverse=reverse,
            run_mem_encoder=not prompt_frame,
            prev_sam_mask_logits=prev_logits,
        )

    # ---- training (with gradients) ------------------------------------------------------------------
    def clip_backbone(self, images: torch.Tensor) -> dict[str, Any]:
        """The image encoder's outputs for a batch of frames float32 [N, 3, S, S], with gradients."""
        return self.net.forward_image(images)

    def train_step(
        self,
        backbone: dict[str, Any],
        rows: torch.Tensor,
        t: int,
        prompts: tuple[dict[str, torch.Tensor] | None, torch.Tensor | None],
        outputs: dict[str, dict[int, Any]],
        num_frames: int,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Frame t of a training clip through SAM 2's own track step and memory encoder (upstream's
        ``_track_step`` and ``_encode_memory_in_output``; inference's batched path is checked equal to them
        by the parity tests), with gradients. ``rows``: each object's row of ``backbone``; ``prompts``: the
        frame's (point inputs, mask inputs) or (None, None); ``outputs``: the clip's memory
        (``cond_frame_outputs`` / ``non_cond_frame_outputs``), to which frame t's output is added.
        Returns (high-res multimask logits [B, M, S, S], predicted IoUs [B, M], object score logits [B, 1])."""
        net = self.net
        feats = {k: [x[rows] for x in backbone[k]] for k in ("backbone_fpn", "vision_pos_enc")}
        _, vision_feats, vision_pos, sizes = net._prepare_backbone_features(feats)
        points, mask = prompts
        out, heads, _, _ = net._track_step(
            t, t == 0, vision_feats, vision_pos, sizes, points, mask, outputs, num_frames, False, None
        )
        _, high_res_multimasks, ious, low_res_masks, high_res_masks, obj_ptr, obj_logits = heads
        out.update(pred_masks=low_res_masks, pred_masks_high_res=high_res_masks, obj_ptr=obj_ptr)
        net._encode_memory_in_output(vision_feats, sizes, points, True, high_res_masks, obj_logits, out)
        outputs["cond_frame_outputs" if t == 0 else "non_cond_frame_outputs"][t] = out
        return high_res_multimasks, ious, obj_logits

    def freeze_image_encoder(self) -> None:
        """Train the rest of SAM 2 only: the image encoder's weights get no gradients."""
        for p in self.net.image_encoder.parameters():
            p.requires_grad_(False)

    def multimask_falls_back(self) -> bool:
        """Whether, in eval mode, SAM 2 swaps an unstable tracked mask (one output per tracked frame) for one
        of its multimask outputs (dynamic multimask): outputs training never trains on tracked frames."""
        net = self.net
        return not net.multimask_output_for_tracking and bool(net.sam_mask_decoder.dynamic_multimask_via_stability)

    # ---- tracking -------------------------------------------------------------------------
    @_timed
    @torch.inference_mode()
    def track_many(
        self,
        feats: ImageFeatures,
        frame_index: int,
        reverse: bool,
        requests: Sequence[TrackRequest],
        num_frames: int,
        judge: Judge | None = None,
    ) -> list[MemoryEntry]:
        """Track every group of a frame on it (a non-prompt frame); one entry per request, in order.

        Each request's memory is read exactly as upstream's ``_prepare_memory_conditioned_features``
        reads the output dict of one of its objects. Requests whose memories have the same layout (token
        count and object-pointer tokens, whatever their frames: objects with other prompt frames too) run
        through memory attention, the heads and the memory encoder as one batch; the work that is the same
        for every object (the frame's features, the memory encoder's projection of them, the first layer's
        self-attention) is done once per frame. ``judge``: a memory policy that picks among SAM 2's
        candidates (and may mark objects absent or ask for a box-prompted retry) before the memory encoder;
        without one, SAM 2's own choice, exactly as upstream.
        """
        prepared = [self._memory_of(frame_index, reverse, r, num_frames) for r in requests]
        buckets: dict[tuple[int, int], list[int]] = {}
        for i, (memory, _, n_ptr, _) in enumerate(prepared):
            buckets.setdefault((memory.shape[0], n_ptr), []).append(i)
        results: list[MemoryEntry | None] = [None] * len(requests)
        with self.autocast():
            fused = []
            for (_, n_ptr), idx in buckets.items():
                memory = torch.cat([prepared[i][0] for i in idx], dim=1)
                memory_pos = torch.cat([prepared[i][1] for i in idx], dim=1)
                kv = self._key_values(n_ptr, [prepared[i][3] for i in idx])
                fused.append((idx, self._fused(feats, memory, memory_pos, n_ptr, kv)))
            if judge is not None and len(fused) > 1:
                # Only memory attention needs one memory layout per batch: with a policy (whose refused frames
                # give objects memories of different lengths) the heads, the verdict and the memory encoder
                # run once for all objects. Upstream's default keeps its exact per-layout batches.
                fused = [([i for idx, _ in fused for i in idx], torch.cat([f for _, f in fused]))]
            for idx, pix_feat in fused:
                owners = [(i, lane) for i in idx for lane in range(requests[i].batch)]
                entry = self._heads(feats, pix_feat, judge, owners)
                start = 0
                for i in idx:
                    rows = slice(start, start + requests[i].batch)
                    start = rows.stop
                    results[i] = MemoryEntry(
                        maskmem=entry.maskmem[rows],  # type: ignore[index]
                        obj_ptr=entry.obj_ptr[rows],
                        low_res=entry.low_res[rows],  # type: ignore[index]
                        score=entry.score[rows],
                    )
        return results  # type: ignore[return-value]

    def _memory_of(
        self, t: int, reverse: bool, r: TrackRequest, num_frames: int
    ) -> tuple[torch.Tensor, torch.Tensor, int, list[MemoryEntry]]:
        """One request's memory tokens and positions, float32 [N, B, C_mem] each, how many of the last
        tokens are object pointers and the memory frames of the others (:func:`sam2_port.memory_tokens`)."""
        assert self._maskmem_pos is not None
        return sam2_port.memory_tokens(self.net, t, reverse, r, num_frames, self._maskmem_pos)

    def _key_values(self, n_ptr: int, pieces: list[list[MemoryEntry]]) -> sam2_port.KeyValues | None:
        """With :attr:`kv_cache`, where a batch's memory attention gets its keys and values."""
        if not self.kv_cache:
            return None
        return lambda i, layer, memory, pos: sam2_port.project_memory(layer, i, memory, pos, n_ptr, pieces)

    def _fused(
        self,
        feats: ImageFeatures,
        memory: torch.Tensor,
        memory_pos: torch.Tensor,
        n_ptr: int,
        key_values: sam2_port.KeyValues | None = None,
    ) -> torch.Tensor:
        """The frame's features conditioned on B objects' memories ``memory`` [N, B, C_mem] (all of one
        layout): [B, C, h, w], what SAM2Base.track_step gives its heads."""
        vision_feats, vision_pos, sizes = self.backbone_features(feats)
        h, w = sizes[-1]
        fused = self._attend(feats, vision_feats[-1], vision_pos[-1], memory, memory_pos, n_ptr, key_values)
        return fused.permute(1, 2, 0).reshape(memory.shape[1], self.net.hidden_dim, h, w)

    def _heads(
        self,
        feats: ImageFeatures,
        pix_feat: torch.Tensor,
        judge: Judge | None = None,
        owners: Sequence[tuple[int, int]] = (),
    ) -> MemoryEntry:
        """The rest of SAM2Base.track_step for B objects' memory-conditioned features ``pix_feat``
        [B, C, h, w]: the SAM heads (and a policy's verdict) and the memory encoder."""
        net = self.net
        self.batches += 1
        batch = pix_feat.shape[0]
        vision_feats, _, sizes = self.backbone_features(feats)
        h, w = sizes[-1]
        high_res = [
            x.permute(1, 2, 0).view(1, x.size(2), *s).expand(batch, -1, -1, -1)
            for x, s in zip(vision_feats[:-1], sizes[:-1])
        ]
        heads = contextlib.nullcontext()
        if self._heads_in_float32:
            # On a CPU the heads and the memory encoder gain nothing from bfloat16 (the fuser's depthwise
            # convolutions run 3x slower in it, measured with AMX): they run in float32 there.
            heads = torch.autocast("cpu", enabled=False)
            pix_feat, high_res = pix_feat.float(), [x.float() for x in high_res]
        with heads:
            t0 = time.perf_counter()
            if judge is None:
                _, _, _, low_res, high_res_masks, obj_ptr, score = net._forward_sam_heads(
                    backbone_features=pix_feat,
                    point_inputs=None,
                    mask_inputs=None,
                    high_res_features=high_res or None,
                    multimask_output=net._use_multimask(False, None),
                )
            else:
                low_res, high_res_masks, obj_ptr, score = self._judged_heads(feats, pix_feat, high_res, judge, owners)
            self.heads_seconds += time.perf_counter() - t0
            maskmem = self._encode_memory(feats, vision_feats[-1], h, w, high_res_masks, score)
        return MemoryEntry(
            maskmem=maskmem.to(self.memory_dtype),
            obj_ptr=obj_ptr,
            low_res=low_res.float(),
            score=score.float(),
        )

    def _judged_heads(
        self,
        feats: ImageFeatures,
        pix_feat: torch.Tensor,
        high_res: list[torch.Tensor],
        judge: Judge,
        owners: Sequence[tuple[int, int]],
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The SAM heads with a policy's verdict between the decoder and the memory encoder: returns low-res
        logits [B, 1, h, w], high-res logits [B, 1, S, S], object pointers [B, C], score logits [B, 1]."""
        net = self.net

        basis = _appearance_basis(feats.backbone_out["backbone_fpn"][-1][0].float())  # once per frame

        first = sam2_port.decode(net, pix_feat, high_res)
        v = judge.choose(owners, _candidates(first, *basis))
        mask, absent = v.mask.copy(), v.absent.copy()
        tokens, score = first[2].clone(), first[3].clone()
        token = sam2_port.pointer_token(net, np.asarray(v.choice), first[5])
        rows = np.flatnonzero(np.isfinite(v.retry).all(axis=1)) if v.retry is not None else np.zeros(0, dtype=int)
        if len(rows):
            scale = self.image_size / mask.shape[-1]
            r = torch.from_numpy(rows).to(pix_feat.device)
            boxes = torch.from_numpy(v.retry[rows] * scale).to(pix_feat.device)
            # a box-prompted retry reads the frame as a prompt frame does, without memory: it segments what
            # is in the box, whatever the memory holds
            if self.net.directly_add_no_mem_embed:
                bare = self.prompt_frame_features(feats).to(pix_feat.dtype).expand(len(rows), -1, -1, -1)
            else:
                bare = pix_feat[r]
            again = sam2_port.decode(net, bare, [x[r] for x in high_res], boxes)
            v2 = judge.rechoose([owners[i] for i in rows], _candidates(again, *basis))
            taken = ~np.asarray(v2.absent)
            for j, row in enumerate(rows):
                if taken[j]:
                    mask[row], absent[row] = v2.mask[j], False
                    tokens[row], score[row] = again[2][j], again[3][j]
            token[rows[taken]] = sam2_port.pointer_token(net, np.asarray(v2.choice), again[5])[taken]
        return sam2_port.verdict_outputs(net, mask, absent, tokens, score, token, pix_feat.device)

    def _attend(
        self,
        feats: ImageFeatures,
        curr: torch.Tensor,
        curr_pos: torch.Tensor,
        memory: torch.Tensor,
        memory_pos: torch.Tensor,
        n_ptr: int,
        key_values: sam2_port.KeyValues | None = None,
    ) -> torch.Tensor:
        """Memory attention for B objects of one frame (:func:`sam2_port.attend`), the first layer's
        self-attention kept with the frame's features."""
        out, feats.sa0 = sam2_port.attend(
            self.net.memory_attention, curr, curr_pos, memory, memory_pos, n_ptr, feats.sa0, key_values
        )
        return out

    def _encode_memory(
        self,
        feats: ImageFeatures,
        top: torch.Tensor,
        h: int,
        w: int,
        high_res_masks: torch.Tensor,
        score: torch.Tensor,
    ) -> torch.Tensor:
        """The memory of a tracked frame's B masks, high_res_masks [B, 1, S, S] logits -> [B, C_mem, H', W']
        (:func:`sam2_port.encode_memory`), the frame's projection made once per frame."""
        if feats.proj is None:
            feats.proj = sam2_port.frame_projection(self.net, top, h, w)
        proj = feats.proj.float() if self._heads_in_float32 else feats.proj
        x, pos = sam2_port.encode_memory(self.net, proj, high_res_masks, score)
        self._remember_pos([pos])
        return x

    def _remember_pos(self, pos: list[torch.Tensor]) -> None:
        # maskmem_pos_enc depends only on the feature size: keep one copy, as upstream does.
        if self._maskmem_pos is None:
            self._maskmem_pos = pos[-1][0:1].clone()

    def memory_pos(self) -> torch.Tensor | None:
        """The cached memory position encoding (a checkpoint keeps it; see ``restore_memory_pos``)."""
        return None if self._maskmem_pos is None else self._maskmem_pos.cpu()

    def restore_memory_pos(self, pos: torch.Tensor | None) -> None:
        self._maskmem_pos = None if pos is None else pos.to(self.device)


def build_model(
    arch: Mapping[str, Any],
    checkpoint: str | None = None,
    device: str = "auto",
    compile: bool = False,
    fill_hole_area: int = 0,
    seed: int | None = None,
    dtype: str = "float32",
    tf32: bool = False,
    kv_cache: bool = False,
) -> SamModel:
    """Build a :class:`SamModel` from SAM 2's ``model:`` node (``cfg.model.arch.model`` as a dict).

    ``seed`` seeds the random initialisation (used when ``checkpoint`` is None); ``tf32``: float32 on CUDA
    in TF32 (the command's default, ``model.tf32``; off here: upstream's bits); ``kv_cache``: keep memory
    attention's projections of each memory frame (:attr:`SamModel.kv_cache`).
    """
    compute_dtype(dtype)  # a bad name fails before the model is built
    dev = pick_device(device)
    if seed is not None:
        torch.manual_seed(seed)
    net = build_sam2(arch, checkpoint, dev)
    return SamModel(net, dev, fill_hole_area=fill_hole_area, compile=compile, dtype=dtype, tf32=tf32, kv_cache=kv_cache)


def _compile(model: SamModel, net: torch.nn.Module, device: torch.device) -> tuple[str, ...]:
    """torch.compile the parts that pay on ``device``; returns their names. Compiled code is cached under
    ``$TRACKER_HOME/torchinductor`` (not the shared /tmp), so a second run loads it instead of compiling."""
    from ..weights_cache import home

    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(home() / "torchinductor"))
    # the image encoder always sees one frame of one size: no recompiles
    net.image_encoder.forward = torch.compile(net.image_encoder.forward, dynamic=False)
    if device.type != "cuda":
        # On a CPU compiled memory attention ran 1.5x slower than eager at 5 objects (inductor's matmuls and
        # attention against MKL's and the flash kernel; the compiled encoder 0.95x eager end to end):
        # only the encoder is compiled there (bench_objects.py --cases compiled).
        log.info("model.compile on a CPU: the image encoder only; no speed-up over eager was measured on one")
        return ("image_encoder",)
    # its token count changes with the memories held: dynamic shapes, as upstream's vos_optimized
    model._attend = torch.compile(model._attend, dynamic=True)  # type: ignore[method-assign]
    return ("image_encoder", "memory_attention")


def compile_seconds() -> float:
    """Seconds this process has spent in torch.compile so far (0.0 where torch does not say)."""
    try:
        from torch._dynamo.utils import compilation_time_metrics
    except ImportError:  # pragma: no cover - a torch without it
        return 0.0
    return float(sum(compilation_time_metrics.get("_compile.compile_inner", ())))


def _appearance_basis(top: torch.Tensor) -> tuple[tuple[int, int], torch.Tensor, torch.Tensor]:
    """(grid, features [C, HW], their mean over the frame [C]) of a frame's top-level features ``top``
    [C, H, W]: what :func:`_candidates` pools appearance vectors from."""
    flat = top.flatten(1)
    return top.shape[-2:], flat, flat.mean(1)


def _candidates(out: tuple, grid: tuple[int, int], flat: torch.Tensor, centre: torch.Tensor) -> Candidates:
    """A decoder run's outputs as :class:`Candidates`, with each object's appearance: the frame's features
    ``flat`` [C, HW] averaged under its chosen mask, less their mean ``centre`` over the frame (what every
    region shares would make all objects look alike)."""
    masks, ious, _, score, chosen, options = out
    shown = (masks[torch.arange(len(chosen), device=masks.device), chosen] > 0).float()[:, None]
    weight = F.adaptive_avg_pool2d(shown, grid).flatten(1)  # [B, HW]
    total = weight.sum(1, keepdim=True)
    pooled = weight @ flat.T / total.clamp(min=1e-6)  # [B, C]
    look = F.normalize(pooled - centre, dim=1) * (total > 0)
    return Candidates(
        masks.cpu().numpy(),
        ious.cpu().numpy(),
        score[:, 0].cpu().numpy(),
        chosen.cpu().numpy(),
        options,
        look.cpu().numpy(),
    )
