"""Code ported from upstream SAM 2, batched over objects. :mod:`tracker.engine.sam` calls SAM 2's own
modules wherever one call does what a frame needs; these are the pieces it cannot call as they are, because
upstream runs them for one object per call (several objects here share a frame's work) or keeps their
inputs in its own state dict.

Each function names the upstream function it follows, in sam2 1.1.0 (the PyPI sdist, equal to
facebookresearch/sam2 of December 2024). :data:`UPSTREAM` holds a hash of each such function's source as
ported: ``tests/test_parity.py`` checks the installed sam2 still has it (another sam2 is a port to redo),
and the parity tests check the outputs are upstream's, bit for bit on CPU.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from sam2.modeling.position_encoding import apply_rotary_enc
from sam2.modeling.sam.transformer import RoPEAttention
from sam2.modeling.sam2_utils import get_1d_sine_pe, select_closest_cond_frames

from .reads import memory_reads
from .types import NO_OBJ_SCORE, MemoryEntry, TrackRequest

# upstream function -> the first 16 hex digits of the sha256 of its source (inspect.getsource), sam2 1.1.0
UPSTREAM = {
    "sam2.modeling.sam2_base.SAM2Base._prepare_memory_conditioned_features": "bf6d7c3fe3e70ae7",  # memory_tokens
    "sam2.modeling.sam2_base.SAM2Base._forward_sam_heads": "f9b235d397421447",  # decode, verdict_outputs
    "sam2.modeling.sam2_base.SAM2Base._encode_new_memory": "dca9341f9e960125",  # encode_memory
    "sam2.modeling.memory_attention.MemoryAttention.forward": "29d8ecabcabc6147",  # attend
    "sam2.modeling.memory_attention.MemoryAttentionLayer.forward": "316640acbff02979",  # attend
    "sam2.modeling.sam.mask_decoder.MaskDecoder.forward": "662dc2b7ed134055",  # decode's choice
    "sam2.modeling.memory_encoder.MemoryEncoder.forward": "93ba8fee916785ad",  # frame_projection
    "sam2.modeling.memory_attention.MemoryAttentionLayer._forward_ca": "c0399c539a513c16",  # cross_attention
    "sam2.modeling.sam.transformer.RoPEAttention.forward": "f2042b996e283daa",  # cross_attention
    "sam2.modeling.sam.transformer.Attention.forward": "78df0516c13883b1",  # cross_attention
}

# (layer index, layer, memory [B, N, C_mem], memory_pos [B, N, C_mem]) -> its keys and values [B, N, C]
KeyValues = Callable[[int, torch.nn.Module, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
Decoded = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, tuple[int, ...]]


def memory_tokens(
    net: torch.nn.Module,
    t: int,
    reverse: bool,
    r: TrackRequest,
    num_frames: int,
    maskmem_pos: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, int, list[MemoryEntry]]:
    """``SAM2Base._prepare_memory_conditioned_features``' memory for one request: its memory tokens and
    their positions, float32 [N, B, C_mem] each, how many of the last tokens are object pointers, and the
    memory frames the tokens before them come from, in order (H*W tokens each).
    ``maskmem_pos``: the memory encoder's position encoding [1, C_mem, H, W] (the same for every frame)."""
    b, num_maskmem = r.batch, net.num_maskmem
    selected, unselected = select_closest_cond_frames(t, r.cond, net.max_cond_frames_in_attn)
    chosen: list[tuple[int, MemoryEntry | None]] = [(0, e) for e in selected.values()]
    reads = memory_reads(t, reverse, num_maskmem, net.memory_temporal_stride_for_eval)
    for t_pos, prev in zip(range(1, num_maskmem), reads):
        chosen.append((t_pos, r.recent.get(prev, unselected.get(prev))))
    spatial_pos = maskmem_pos.flatten(2).permute(2, 0, 1).float()  # [HW, 1, C_mem]
    memory, memory_pos, pieces = [], [], []
    for t_pos, e in chosen:
        if e is None:
            continue
        assert e.maskmem is not None, f"frame {t}: a memory it reads was dropped (memory policy error)"
        pieces.append(e)
        memory.append(e.maskmem.float().flatten(2).permute(2, 0, 1))
        pos = spatial_pos + net.maskmem_tpos_enc[num_maskmem - t_pos - 1].float()
        memory_pos.append(pos.expand(-1, b, -1))
    n_ptr = 0
    if net.use_obj_ptrs_in_encoder:
        ptrs = _pointer_tokens(net, t, reverse, r, num_frames, selected, unselected, maskmem_pos.device)
        if ptrs is not None:
            memory.append(ptrs[0])
            memory_pos.append(ptrs[1])
            n_ptr = ptrs[0].shape[0]
    return torch.cat(memory, dim=0), torch.cat(memory_pos, dim=0), n_ptr, pieces


def _pointer_tokens(
    net: torch.nn.Module,
    t: int,
    reverse: bool,
    r: TrackRequest,
    num_frames: int,
    selected: Mapping[int, MemoryEntry],
    unselected: Mapping[int, MemoryEntry],
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The object-pointer part of ``_prepare_memory_conditioned_features``: tokens and positions
    [P, B, C_mem], or None without pointers."""
    b = r.batch
    max_ptrs = min(num_frames, net.max_obj_ptrs_in_encoder)
    sign = -1 if reverse else 1
    past = {s: e for s, e in selected.items() if (s >= t if reverse else s <= t)}
    ptr_cond = past if net.only_obj_ptrs_in_the_past_for_eval else selected
    pos_and_ptrs = [
        ((t - s) * sign if net.use_signed_tpos_enc_to_obj_ptrs else abs(t - s), e.obj_ptr) for s, e in ptr_cond.items()
    ]
    for t_diff in range(1, max_ptrs):
        s = t + t_diff if reverse else t - t_diff
        if s < 0 or s >= num_frames:
            break
        e = (r.recent if r.pointers is None else r.pointers).get(s, unselected.get(s))
        if e is not None:
            pos_and_ptrs.append((t_diff, e.obj_ptr))
    if not pos_and_ptrs:
        return None
    pos_list, ptrs = zip(*pos_and_ptrs)
    obj_ptrs = torch.stack(ptrs, dim=0).float()  # [P, B, C]
    c, mem_dim = net.hidden_dim, net.mem_dim
    if net.add_tpos_enc_to_obj_ptrs:
        tpos_dim = c if net.proj_tpos_enc_in_obj_ptrs else mem_dim
        obj_pos = torch.tensor(pos_list, device=device)
        obj_pos = get_1d_sine_pe(obj_pos / (max_ptrs - 1), dim=tpos_dim)
        obj_pos = net.obj_ptr_tpos_proj(obj_pos).float().unsqueeze(1).expand(-1, b, mem_dim)
    else:
        obj_pos = obj_ptrs.new_zeros(len(pos_list), b, mem_dim)
    if mem_dim < c:  # a pointer becomes C // mem_dim tokens
        obj_ptrs = obj_ptrs.reshape(-1, b, c // mem_dim, mem_dim).permute(0, 2, 1, 3).flatten(0, 1)
        obj_pos = obj_pos.repeat_interleave(c // mem_dim, dim=0)
    return obj_ptrs, obj_pos


def attend(
    att: torch.nn.Module,
    curr: torch.Tensor,
    curr_pos: torch.Tensor,
    memory: torch.Tensor,
    memory_pos: torch.Tensor,
    n_ptr: int,
    first_self_attention: torch.Tensor | None,
    key_values: KeyValues | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``MemoryAttention.forward`` for B objects of one frame: curr / curr_pos [HW, 1, C] (the frame's,
    shared), memory / memory_pos [N, B, C_mem] -> [HW, B, C]. The first layer's self-attention sees the same
    tokens for every object: it runs once per frame, on batch 1; returned second, and given back as
    ``first_self_attention`` for the frame's further batches. ``key_values`` (batch-first layers only): the
    cross-attentions' keys and values come from it (:func:`project_memory`) instead of being projected
    here from the whole memory."""
    if key_values is not None and not att.batch_first:
        key_values = None
    batch = memory.shape[1]
    out = curr + 0.1 * curr_pos if att.pos_enc_at_input else curr
    if att.batch_first:
        out, query_pos = out.transpose(0, 1), curr_pos.transpose(0, 1)
        memory, memory_pos = memory.transpose(0, 1), memory_pos.transpose(0, 1)
    else:
        query_pos = curr_pos
    sa0 = first_self_attention
    for i, layer in enumerate(att.layers):
        if i == 0:
            if sa0 is None:
                sa0 = layer._forward_sa(out, query_pos)
            out = sa0.expand(batch, -1, -1) if att.batch_first else sa0.expand(-1, batch, -1)
        else:
            out = layer._forward_sa(out, query_pos)
        rope = isinstance(layer.cross_attn_image, RoPEAttention)
        if key_values is None:
            out = layer._forward_ca(out, memory, query_pos, memory_pos, n_ptr if rope else 0)
        else:
            keys, values = key_values(i, layer, memory, memory_pos)
            out = cross_attention(layer, out, query_pos, keys, values, n_ptr if rope else 0)
        out = out + layer.dropout3(layer.linear2(layer.dropout(layer.activation(layer.linear1(layer.norm3(out))))))
    out = att.norm(out)
    assert sa0 is not None
    return (out.transpose(0, 1) if att.batch_first else out), sa0


def cross_attention(
    layer: torch.nn.Module,
    tgt: torch.Tensor,
    query_pos: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    num_k_exclude_rope: int,
) -> torch.Tensor:
    """``MemoryAttentionLayer._forward_ca`` with ``RoPEAttention.forward`` (or ``Attention.forward``) given
    the memory's keys and values already projected: tgt / query_pos [B, HW, C], keys / values [B, N, C]
    (``keys`` is written into: a tensor of the call's own) -> [B, HW, C]."""
    att = layer.cross_attn_image
    tgt2 = layer.norm2(tgt)
    q = att.q_proj(tgt2 + query_pos if layer.pos_enc_at_cross_attn_queries else tgt2)
    q = att._separate_heads(q, att.num_heads)
    k = att._separate_heads(keys, att.num_heads)
    v = att._separate_heads(values, att.num_heads)
    if isinstance(att, RoPEAttention):
        w = h = math.sqrt(q.shape[-2])
        att.freqs_cis = att.freqs_cis.to(q.device)
        if att.freqs_cis.shape[0] != q.shape[-2]:
            att.freqs_cis = att.compute_cis(end_x=w, end_y=h).to(q.device)
        if q.shape[-2] != k.shape[-2]:
            assert att.rope_k_repeat
        num_k_rope = k.size(-2) - num_k_exclude_rope
        q, k[:, :, :num_k_rope] = apply_rotary_enc(
            q, k[:, :, :num_k_rope], freqs_cis=att.freqs_cis, repeat_freqs_k=att.rope_k_repeat
        )
    out = F.scaled_dot_product_attention(q, k, v, dropout_p=att.dropout_p if att.training else 0.0)
    out = att.out_proj(att._recombine_heads(out))
    return tgt + layer.dropout2(out)


def project_memory(
    layer: torch.nn.Module,
    index: int,
    memory: torch.Tensor,
    memory_pos: torch.Tensor,
    n_ptr: int,
    pieces: Sequence[Sequence[MemoryEntry]],
) -> tuple[torch.Tensor, torch.Tensor]:
    """The key and value projections of cross-attention layer ``index`` (as ``RoPEAttention.forward`` makes
    them) for batch-first memory / memory_pos [B, N, C_mem] -> [B, N, C] each. A memory frame's values are
    the same whichever frame reads it: they are projected once and kept with its entry (its keys are not:
    they hold its slot's position encoding, which moves on every frame). ``pieces``: each request's memory
    frames (:func:`memory_tokens`), its rows next in the batch. The kept rows are the very numbers a
    projection of the whole memory gives (a linear layer maps each token alone)."""
    att = layer.cross_attn_image
    keys = att.k_proj(memory + memory_pos if layer.pos_enc_at_cross_attn_keys else memory)
    if len(pieces) != 1:  # rows of several groups: assembling kept values would copy them twice
        return keys, att.v_proj(memory)
    per_frame = (memory.shape[1] - n_ptr) // max(len(pieces[0]), 1)
    values = []
    for j, entry in enumerate(pieces[0]):
        kept = entry.projected.get(index)
        if kept is None:
            kept = entry.projected[index] = att.v_proj(memory[:, j * per_frame : (j + 1) * per_frame])
        values.append(kept)
    if n_ptr:
        values.append(att.v_proj(memory[:, memory.shape[1] - n_ptr :]))
    return keys, torch.cat(values, dim=1)


def decode(
    net: torch.nn.Module, pix_feat: torch.Tensor, high_res: list[torch.Tensor], boxes: torch.Tensor | None = None
) -> Decoded:
    """SAM 2's prompt encoder and mask decoder on B memory-conditioned frames (``SAM2Base._forward_sam_heads``
    up to the decoder, with ``MaskDecoder.forward``'s choice), keeping all four output tokens: masks float32
    [B, 4, h, w] (NO_OBJ_SCORE where the object is absent), ious [B, 4], tokens [B, 4, C], score logits
    float32 [B, 1], SAM 2's choice int64 [B], and the tokens it chooses among. ``boxes``: float [B, 4] in
    input pixels: a box prompt on each frame (as a click on a tracked frame in upstream's predictor)."""
    dec = net.sam_mask_decoder
    b, dev = pix_feat.shape[0], pix_feat.device
    if boxes is None:
        coords = torch.zeros(b, 1, 2, device=dev)
        labels = -torch.ones(b, 1, dtype=torch.int32, device=dev)
    else:
        coords = boxes.reshape(b, 2, 2).float()
        labels = torch.tensor([[2, 3]], dtype=torch.int32, device=dev).expand(b, 2)
    sparse, dense = net.sam_prompt_encoder(points=(coords, labels), boxes=None, masks=None)
    masks, ious, tokens, score = dec.predict_masks(
        image_embeddings=pix_feat,
        image_pe=net.sam_prompt_encoder.get_dense_pe(),
        sparse_prompt_embeddings=sparse,
        dense_prompt_embeddings=dense,
        repeat_image=False,
        high_res_features=high_res or None,
    )
    npts = 0 if boxes is None else 2
    multi = net.multimask_output_in_sam and net.multimask_output_for_tracking
    multi = multi and net.multimask_min_pt_num <= npts <= net.multimask_max_pt_num
    best = 1 + ious[:, 1:].argmax(dim=-1)
    if multi:
        chosen, options = best, (1, 2, 3)
    else:
        chosen, options = torch.zeros_like(best), (0,)
        if dec.dynamic_multimask_via_stability:  # as MaskDecoder.forward in single-mask mode
            stable = dec._get_stability_scores(masks[:, 0]) >= dec.dynamic_multimask_stability_thresh
            chosen = torch.where(stable, chosen, best)
    if net.pred_obj_scores:
        masks = torch.where(score[:, :, None, None] > 0, masks, NO_OBJ_SCORE)
    return masks.float(), ious.float(), tokens, score.float(), chosen, options


def pointer_token(net: torch.nn.Module, choice: np.ndarray, options: tuple[int, ...]) -> np.ndarray:
    """The decoder token each object's pointer comes from: the chosen multimask token only with
    ``use_multimask_token_for_obj_ptr`` (as ``_forward_sam_heads``), else the single-mask token."""
    multi = options != (0,) and net.use_multimask_token_for_obj_ptr
    return choice if multi else np.zeros_like(choice)


def verdict_outputs(
    net: torch.nn.Module,
    mask: np.ndarray,
    absent: np.ndarray,
    tokens: torch.Tensor,
    score: torch.Tensor,
    token: np.ndarray,
    dev: torch.device,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The heads' outputs for a verdict's masks ``mask`` float32 [B, h, w] and ``absent`` bool [B], given
    the decoder's output tokens [B, K, C], score logits [B, 1] and the token each pointer comes from int [B]:
    low-res logits [B, 1, h, w], high-res logits [B, 1, S, S], object pointers [B, C], score logits [B, 1]
    (the pointer tail of ``SAM2Base._forward_sam_heads``, absent objects' masks and scores made empty)."""
    gone = torch.from_numpy(absent).to(dev)
    low_res = torch.from_numpy(mask).to(dev)[:, None].float()
    low_res = torch.where(gone[:, None, None, None], torch.full_like(low_res, NO_OBJ_SCORE), low_res)
    score = torch.where(gone[:, None], score.clamp(max=-1.0), score)
    size = (net.image_size,) * 2
    high_res_masks = F.interpolate(low_res, size=size, mode="bilinear", align_corners=False)
    obj_ptr = net.obj_ptr_proj(tokens[torch.arange(len(token), device=dev), torch.from_numpy(token).to(dev)])
    if net.pred_obj_scores:
        seen = score.sigmoid() if net.soft_no_obj_ptr else (score > 0).float()
        if net.fixed_no_obj_ptr:
            obj_ptr = seen * obj_ptr
        obj_ptr = obj_ptr + (1 - seen) * net.no_obj_ptr
    return low_res, high_res_masks, obj_ptr, score


def frame_projection(net: torch.nn.Module, top: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """The memory encoder's projection of a frame's top-level features top [HW, 1, C]: [1, C, h, w], the
    same for every object of the frame (``MemoryEncoder.forward``'s ``pix_feat_proj``)."""
    return net.memory_encoder.pix_feat_proj(top.permute(1, 2, 0).view(1, net.hidden_dim, h, w))


def encode_memory(
    net: torch.nn.Module, proj: torch.Tensor, high_res_masks: torch.Tensor, score: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``SAM2Base._encode_new_memory`` for a tracked frame's B masks (not from points), from the frame's
    projection ``proj`` (:func:`frame_projection`): high_res_masks [B, 1, S, S] logits -> (memory features
    [B, C_mem, H', W'], their position encoding)."""
    enc = net.memory_encoder
    mask = torch.sigmoid(high_res_masks)
    if net.sigmoid_scale_for_mem_enc != 1.0:
        mask = mask * net.sigmoid_scale_for_mem_enc
    if net.sigmoid_bias_for_mem_enc != 0.0:
        mask = mask + net.sigmoid_bias_for_mem_enc
    x = enc.out_proj(enc.fuser(proj + enc.mask_downsampler(mask)))
    pos = enc.position_encoding(x).to(x.dtype)
    if net.no_obj_embed_spatial is not None:
        appearing = (score > 0).float()
        x = x + (1 - appearing[..., None, None]) * net.no_obj_embed_spatial[..., None, None].expand(*x.shape)
    return x, pos
