"""Fine-tuning / training SAM 2 on a DAVIS-layout dataset (``tracker-train``).

Each step takes a clip of T frames of one sequence; every object visible on the clip's first frame is
prompted there with a prompt sampled from its ground truth (mask, box, or 1-3 clicks, as SAM 2's
training does), then tracked through the clip with SAM 2's own memory path (``SamModel.train_step``:
upstream's ``SAM2Base._track_step`` and ``_encode_memory_in_output``, in training mode). Losses per frame
as in the SAM 2 paper: focal 20 : dice 1 : IoU prediction 1 : object score 1, the mask losses on the best
of the predicted masks. Checkpoints are Meta's format (``{"model": state_dict}``) plus what resuming needs.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .datasets import VosSequence, load_sequences
from .vos import run_dataset

log = logging.getLogger(__name__)

_MEAN = torch.tensor((0.485, 0.456, 0.406))[:, None, None]
_STD = torch.tensor((0.229, 0.224, 0.225))[:, None, None]


@dataclass(frozen=True)
class TrainSettings:
    data_root: str
    out_dir: str
    split: str = "train"
    resolution: str = "480p"
    val_root: str | None = None
    val_split: str = "val"
    steps: int = 1000
    stop_after: int = 0  # stop at this step, keeping the schedule of `steps` (a stage of a longer run); 0 = off
    clip_len: int = 4
    max_objects: int = 3
    clips_per_step: int = 1
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup: int = 100
    min_lr_ratio: float = 0.05
    grad_clip: float = 1.0
    # SAM 2's loss weights are focal 20 : dice 1 : IoU 1 : object score 1. From scratch on small objects
    # focal 20 : dice 1 settles on "all background" first (see tracker/weights/MODEL_CARD.md).
    focal_weight: float = 20.0
    dice_weight: float = 1.0
    iou_weight: float = 1.0
    obj_weight: float = 1.0
    freeze_image_encoder: bool = False
    prob_mask_prompt: float = 0.3
    prob_box_prompt: float = 0.35
    prob_correction_click: float = 0.3  # per later frame: a click inside each visible object (SAM 2's corrections)
    eval_every: int = 500
    eval_sequences: int = 0  # 0 = all of the validation split
    save_every: int = 250
    keep_every: int = 0  # also keep the checkpoint of every keep_every-th step as ckpt_<step>.pt (0 = last.pt only)
    log_every: int = 25
    seed: int = 0

    @property
    def weights(self) -> dict[str, float]:
        return {"focal": self.focal_weight, "dice": self.dice_weight, "iou": self.iou_weight, "obj": self.obj_weight}


class ClipData:
    """Training sequences at the model's resolution, held as uint8 (frames) and label maps."""

    def __init__(self, sequences: Sequence[VosSequence], size: int) -> None:
        self.frames: list[np.ndarray] = []
        self.labels: list[np.ndarray] = []
        for seq in sequences:
            imgs = [
                np.asarray(Image.open(f).convert("RGB").resize((size, size), Image.BILINEAR)) for f in seq.frame_files
            ]
            labs = [
                np.asarray(Image.fromarray(seq.label_map(t)).resize((size, size), Image.NEAREST))
                for t in range(len(seq.frame_files))
            ]
            self.frames.append(np.stack(imgs))
            self.labels.append(np.stack(labs))
        if not self.frames:
            raise ValueError("the training split has no sequences")

    def sample(self, rng: np.random.Generator, clip_len: int, max_objects: int):
        """(images float32 [T, 3, S, S] normalised, targets bool [T, B, S, S]) of a random clip."""
        for _ in range(100):
            i = int(rng.integers(len(self.frames)))
            n = len(self.frames[i])
            t0 = int(rng.integers(0, max(1, n - clip_len + 1)))
            labs = self.labels[i][t0 : t0 + clip_len]
            ids = sorted(set(np.unique(labs[0]).tolist()) - {0})
            if ids:
                break
        ids = list(rng.permutation(ids)[:max_objects])
        imgs = torch.from_numpy(self.frames[i][t0 : t0 + clip_len]).permute(0, 3, 1, 2).float() / 255.0
        imgs = (imgs - _MEAN) / _STD
        targets = torch.from_numpy(np.stack([labs == oid for oid in ids], axis=1))
        return imgs, targets

    def sample_batch(self, rng: np.random.Generator, clips: int, clip_len: int, max_objects: int):
        """``clips`` random clips tracked as one SAM 2 batch: images [C, T, 3, S, S], targets bool
        [T, B, S, S] (the objects of all clips), owner long [B] (the clip each object belongs to)."""
        imgs, targets, owner = [], [], []
        for c in range(clips):
            im, tg = self.sample(rng, clip_len, max_objects)
            imgs.append(im)
            targets.append(tg)
            owner += [c] * tg.shape[1]
        return torch.stack(imgs), torch.cat(targets, 1), torch.tensor(owner)


def _point_prompt(rng: np.random.Generator, mask: np.ndarray, s: TrainSettings, size: int):
    """(coords float32 [N, 2], labels int64 [N]) for one object: a loosely drawn box (labels 2, 3) or 1-3
    clicks inside its ground-truth mask (label 1)."""
    ys, xs = np.nonzero(mask)
    if rng.random() * (1 - s.prob_mask_prompt) < s.prob_box_prompt:
        x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
        w, h = x1 - x0, y1 - y0
        jit = rng.normal(0, 0.1, 4) * np.array([w, h, w, h])
        box = np.clip(np.array([x0, y0, x1, y1]) + jit, 0, size)
        return box.reshape(2, 2).astype(np.float32), np.array([2, 3])
    k = int(rng.integers(1, 4))
    idx = rng.choice(len(xs), size=k, replace=len(xs) < k)
    return np.stack([xs[idx], ys[idx]], 1).astype(np.float32) + 0.5, np.ones(k, dtype=np.int64)


def _point_inputs(prompts: list[tuple[np.ndarray, np.ndarray]], device) -> dict[str, torch.Tensor]:
    """Stack per-object prompts into SAM 2's padded point_inputs (padding label -1)."""
    n = max(len(c) for c, _ in prompts)
    coords = np.zeros((len(prompts), n, 2), np.float32)
    labels = -np.ones((len(prompts), n), np.int64)
    for i, (c, lab) in enumerate(prompts):
        coords[i, : len(c)], labels[i, : len(lab)] = c, lab
    return {
        "point_coords": torch.from_numpy(coords).to(device),
        "point_labels": torch.from_numpy(labels).int().to(device),
    }


def _focal(logits: torch.Tensor, target: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0) -> torch.Tensor:
    p = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = p * target + (1 - p) * (1 - target)
    loss = ce * (1 - p_t) ** gamma
    loss = (alpha * target + (1 - alpha) * (1 - target)) * loss
    return loss.flatten(2).mean(-1)


def _dice(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    p = logits.sigmoid().flatten(2)
    t = target.flatten(2)
    return 1 - (2 * (p * t).sum(-1) + 1) / (p.sum(-1) + t.sum(-1) + 1)


def frame_loss(multimasks, ious, obj_logits, target) -> dict[str, torch.Tensor]:
    """SAM 2's per-frame loss. multimasks [B, M, S, S] logits, ious [B, M], obj_logits [B, 1],
    target bool [B, S, S]. Mask losses count only where the object is present; summed over B."""
    tgt = target[:, None].float().expand_as(multimasks)
    focal, dice = _focal(multimasks, tgt), _dice(multimasks, tgt)
    best = torch.argmin(20 * focal + dice, dim=1)
    rows = torch.arange(len(best))
    present = target.flatten(1).any(1).float()
    with torch.no_grad():
        pred = multimasks > 0
        inter = (pred & tgt.bool()).flatten(2).sum(-1).float()
        union = (pred | tgt.bool()).flatten(2).sum(-1).float()
        actual_iou = inter / union.clamp(min=1)
    iou_loss = F.l1_loss(ious.float(), actual_iou, reduction="none").mean(1)
    obj = F.binary_cross_entropy_with_logits(obj_logits[:, 0].float(), present, reduction="none")
    return {
        "focal": (focal[rows, best] * present).sum(),
        "dice": (dice[rows, best] * present).sum(),
        "iou": (iou_loss * present).sum(),
        "obj": obj.sum(),
    }


def clip_loss(
    model,
    imgs: torch.Tensor,
    targets: torch.Tensor,
    rng: np.random.Generator,
    s: TrainSettings,
    owner: torch.Tensor | None = None,
):
    """Prompt on the first frame, track through the clip with SAM 2's memory (``model``: a
    :class:`tracker.engine.sam.SamModel`); returns the summed losses averaged over objects. imgs float32
    [T, 3, S, S] (one clip) or [C, T, 3, S, S] with ``owner`` long [B] naming each object's clip (several
    clips in one batch); targets bool [T, B, S, S]."""
    device = model.device
    if owner is None:
        imgs, owner = imgs[None], torch.zeros(targets.shape[1], dtype=torch.long)
    imgs, targets, owner = imgs.to(device), targets.to(device), owner.to(device)
    t_len = imgs.shape[1]
    b = targets.shape[1]
    backbone = model.clip_backbone(imgs.flatten(0, 1))
    outputs: dict = {"cond_frame_outputs": {}, "non_cond_frame_outputs": {}}
    totals = {k: torch.zeros((), device=device) for k in s.weights}
    # One prompt kind per batch (SAM2Base takes either mask inputs or point inputs for the whole batch).
    mask_prompt = rng.random() < s.prob_mask_prompt
    for t in range(t_len):
        prompts = _frame_prompts(t, mask_prompt, targets, rng, s, device)
        # num_frames >= 16: object pointers get the temporal encoding they get at inference on any video of
        # 16 frames or more (with the clip length they would be normalised by t_len - 1 instead of 15).
        multimasks, ious, obj_logits = model.train_step(
            backbone, owner * t_len + t, t, prompts, outputs, max(t_len, 16)
        )
        if prompts[1] is not None:
            # The mask prompt is the output on its own frame: only the pointer path has something to learn.
            continue
        for k, v in frame_loss(multimasks, ious, obj_logits, targets[t]).items():
            totals[k] = totals[k] + v
    return {k: v / b for k, v in totals.items()}


def _frame_prompts(
    t: int, mask_prompt: bool, targets: torch.Tensor, rng: np.random.Generator, s: TrainSettings, device
) -> tuple[dict[str, torch.Tensor] | None, torch.Tensor | None]:
    """(point inputs, mask inputs) of frame t: the first frame's prompt (the mask, or clicks / a box drawn
    from it), later a correction click now and then (``prob_correction_click``)."""
    if t == 0 and mask_prompt:
        return None, targets[0][:, None].float()
    if t == 0:
        size = targets.shape[-1]
        prompts = [_point_prompt(rng, targets[0, i].cpu().numpy(), s, size) for i in range(targets.shape[1])]
        return _point_inputs(prompts, device), None
    if s.prob_correction_click > 0 and rng.random() < s.prob_correction_click:
        return _correction_clicks(rng, targets[t].cpu().numpy(), device), None
    return None, None


def _correction_clicks(rng: np.random.Generator, masks: np.ndarray, device) -> dict[str, torch.Tensor] | None:
    """One positive click inside each visible object (padding label -1 for the others)."""
    prompts = []
    for m in masks:
        ys, xs = np.nonzero(m)
        if len(xs):
            j = int(rng.integers(len(xs)))
            prompts.append((np.array([[xs[j] + 0.5, ys[j] + 0.5]], np.float32), np.array([1])))
        else:
            prompts.append((np.zeros((1, 2), np.float32), np.array([-1])))
    if all(lab[0] < 0 for _, lab in prompts):
        return None
    return _point_inputs(prompts, device)


def _lr_at(step: int, s: TrainSettings) -> float:
    if step < s.warmup:
        return s.lr * (step + 1) / s.warmup
    progress = (step - s.warmup) / max(1, s.steps - s.warmup)
    return s.lr * (s.min_lr_ratio + (1 - s.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def save_checkpoint(path: Path, net, optimizer, step: int, history: list[dict]) -> None:
    tmp = path.with_name(path.name + ".partial")
    torch.save({"model": net.state_dict(), "optimizer": optimizer.state_dict(), "step": step, "history": history}, tmp)
    os.replace(tmp, path)


def export_weights(checkpoint: Path, path: Path, dtype: torch.dtype = torch.float16) -> int:
    """Write the weights of a training checkpoint as a Meta-format file (``{"model": state_dict}``),
    floating-point tensors cast to ``dtype`` to keep it small; returns the file size in bytes."""
    blob = torch.load(checkpoint, map_location="cpu", weights_only=True)
    sd = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in blob["model"].items()}
    tmp = path.with_name(path.name + ".partial")
    torch.save({"model": sd}, tmp)
    os.replace(tmp, path)
    return path.stat().st_size


def evaluate_model(model, sequences: Sequence[VosSequence], out_dir: Path) -> dict:
    net = model.net
    was_training = net.training
    net.eval()
    try:
        results, _ = run_dataset(model, sequences, out_dir, "davis", prompt="mask", prefetch=0)
    finally:
        net.train(was_training)
    return results["dataset"]


def plot_curves(history: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    tr = [h for h in history if "loss" in h]
    ax.plot([h["step"] for h in tr], [h["loss"] for h in tr], label="train loss", color="tab:blue")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ev = [h for h in history if "J&F-Mean" in h]
    if ev:
        ax2 = ax.twinx()
        ax2.plot([h["step"] for h in ev], [h["J&F-Mean"] for h in ev], "o-", color="tab:red", label="val J&F")
        ax2.set_ylabel("validation J&F-Mean")
        ax2.set_ylim(0, 1)
    ax.set_title("tracker-train")
    fig.tight_layout()
    tmp = path.with_name(path.name + ".partial")
    fig.savefig(tmp, format="png")
    plt.close(fig)
    os.replace(tmp, path)


def train(model, s: TrainSettings, checkpoint_from: str | None = None, progress: bool = True) -> list[dict]:
    """Train ``model`` (a tracker.engine.sam.SamModel); resumes from ``out_dir/last.pt`` when it exists."""
    from tqdm import tqdm

    out = Path(s.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    net = model.net
    size = model.image_size
    _warn_multimask_fallback(model)
    data, val_seqs = _data(s, size)
    if s.freeze_image_encoder:
        model.freeze_image_encoder()
    params = [p for p in net.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=s.lr, weight_decay=s.weight_decay)
    last = out / "last.pt"
    step, history = _start(net, optimizer, last, checkpoint_from)
    net.train()
    # bf16 on CUDA, as upstream trains; full precision on the CPU
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if model.device.type == "cuda" else nullcontext()
    ema = None
    bar = tqdm(total=s.steps, initial=step, disable=not progress, desc="training", dynamic_ncols=True)
    t0 = time.perf_counter()
    end = min(s.steps, s.stop_after) if s.stop_after else s.steps
    weights = s.weights
    while step < end:
        rng = np.random.default_rng([s.seed, step])  # the data of step k is the same after a resume
        for g in optimizer.param_groups:
            g["lr"] = _lr_at(step, s)
        optimizer.zero_grad(set_to_none=True)
        imgs, targets, owner = data.sample_batch(rng, s.clips_per_step, s.clip_len, s.max_objects)
        with autocast:
            losses = clip_loss(model, imgs, targets, rng, s, owner)
        loss = sum(weights[k] * v for k, v in losses.items())
        loss.backward()
        parts = {k: float(v.detach()) for k, v in losses.items()}
        torch.nn.utils.clip_grad_norm_(params, s.grad_clip)
        optimizer.step()
        step += 1
        total = float(loss.detach())
        ema = total if ema is None else 0.95 * ema + 0.05 * total
        bar.update(1)
        bar.set_postfix(loss=f"{ema:.3f}")
        if step % s.log_every == 0 or step == end:
            history.append(
                {"step": step, "loss": ema, "lr": _lr_at(step, s), "wall_s": time.perf_counter() - t0, **parts}
            )
        if val_seqs and (step % s.eval_every == 0 or step == end):
            res = evaluate_model(model, val_seqs, out / "val")
            history.append({"step": step, **res})
            log.info("step %d: val J&F %.3f (J %.3f, F %.3f)", step, res["J&F-Mean"], res["J-Mean"], res["F-Mean"])
        keep = bool(s.keep_every) and step % s.keep_every == 0
        if keep:
            save_checkpoint(out / f"ckpt_{step}.pt", net, optimizer, step, history)
        if step % s.save_every == 0 or step == end or keep:
            save_checkpoint(last, net, optimizer, step, history)
            plot_curves(history, out / "curve.png")
            _write_history(out / "history.csv", history)
    bar.close()
    return history


def _data(s: TrainSettings, size: int) -> tuple[ClipData, list]:
    """The training clips' sampler and the validation sequences (the first ``eval_sequences``)."""
    train_seqs = load_sequences("davis", s.data_root, s.split, s.resolution)
    val_seqs = load_sequences("davis", s.val_root, s.val_split, s.resolution) if s.val_root else []
    if s.eval_sequences:
        val_seqs = val_seqs[: s.eval_sequences]
    return ClipData(train_seqs, size), val_seqs


def _warn_multimask_fallback(model) -> None:
    if model.multimask_falls_back():
        log.warning(
            "multimask_output_for_tracking=false with dynamic_multimask_via_stability=true: in eval mode "
            "SAM 2 swaps unstable tracked masks for multimask outputs that this training never trains on "
            "tracked frames; set model.arch.model.sam_mask_decoder_extra_args.dynamic_multimask_via_stability"
            "=false (configs/model_common.yaml does for such models)"
        )


def _start(net, optimizer, last: Path, checkpoint_from: str | None) -> tuple[int, list[dict]]:
    """(step, history) to go on from: ``last`` (a run's own checkpoint, resumed with its optimizer), else
    step 0 from ``checkpoint_from``'s weights (fine-tuning) or the model's own."""
    if last.is_file():
        try:
            blob = torch.load(last, map_location="cpu", weights_only=True)
            net.load_state_dict(blob["model"])
            optimizer.load_state_dict(blob["optimizer"])
            step, history = int(blob["step"]), list(blob["history"])
        except Exception as e:  # torch raises many types for corrupt or foreign files
            raise ValueError(
                f"cannot resume from {str(last)!r} ({type(e).__name__}): it is corrupt or from another model; "
                "delete it to start over, or pick another output_dir"
            ) from None
        log.info("resumed from %s at step %d", last, step)
        return step, history
    if checkpoint_from:
        from ..engine.sam import load_checkpoint

        load_checkpoint(net, checkpoint_from)
    return 0, []


def _write_history(path: Path, history: list[dict]) -> None:
    keys = sorted({k for h in history for k in h}, key=lambda k: (k != "step", k))
    tmp = path.with_name(path.name + ".partial")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(history)
    os.replace(tmp, path)
