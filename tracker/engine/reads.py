"""Which past frames SAM 2 reads when it tracks a frame: the rule of upstream's
``SAM2Base._prepare_memory_conditioned_features``, shared by the memory policy and the model wrapper."""

from __future__ import annotations


def memory_reads(t: int, reverse: bool, num_maskmem: int, stride: int) -> list[int]:
    """Frames whose non-prompt memory SAM 2 reads when tracking frame t, for t_pos = 1 .. num_maskmem-1
    (``SAM2Base._prepare_memory_conditioned_features``)."""
    frames = []
    for t_pos in range(1, num_maskmem):
        t_rel = num_maskmem - t_pos
        if t_rel == 1:
            prev = t - 1 if not reverse else t + 1
        elif not reverse:
            prev = ((t - 2) // stride) * stride - (t_rel - 2) * stride
        else:
            prev = -(-(t + 2) // stride) * stride + (t_rel - 2) * stride
        frames.append(prev)
    return frames


def pointer_reads(t: int, reverse: bool, max_ptrs: int) -> list[int]:
    """Frames whose object pointer SAM 2 reads when tracking frame t (besides prompt frames)."""
    return [t + d if reverse else t - d for d in range(1, max_ptrs)]
