"""Causal attention over a flat stream of sequences (cu_seqlens), so packing keeps flash attention.

A micro-batch, padded or packed, becomes one stream of real tokens plus the offsets where each
sequence starts (`TokenLayout`). Attention never crosses a sequence boundary:

- CUDA, sequences of one length (fixed-length batches): batched SDPA with cuDNN first;
- CUDA, bf16/fp16, mixed lengths: flash attention's variable-length kernel (`aten._flash_attention_forward`
  with cu_seqlens, grouped-query heads native), wrapped in an autograd Function;
- otherwise (CPU, float32): PyTorch's SDPA on each sequence, the reference the tests use.

Padding tokens are dropped before the decoder runs, so padded batches stop paying for padding,
and packed rows never need the dense block mask that made SDPA leave its flash kernel.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TokenLayout:
    """Which tokens of a [batch, seq] micro-batch are real, and where each sequence starts."""

    keep: object | None  # flat indices of the real tokens (None: all of them)
    positions: object  # [tokens] position of each kept token inside its sequence
    cu_seqlens: object  # [sequences + 1] int32 offsets into the kept tokens
    max_len: int
    lengths: list[int]

    def take(self, tensor):
        """The kept tokens of a [batch, seq, ...] tensor, flattened to [tokens, ...]."""
        flat = tensor.reshape(-1, *tensor.shape[2:])
        return flat if self.keep is None else flat.index_select(0, self.keep)


def layout_of(input_ids, attention_mask=None, position_ids=None) -> TokenLayout | None:
    """The layout of a micro-batch; None if its mask or positions are not plain sequences.

    attention_mask: each row's ones must be one contiguous run (left or right padding).
    position_ids (packed rows): each sequence counts 0, 1, 2, ... from its first token.
    """
    import torch

    batch, seq = input_ids.shape
    device = input_ids.device
    if attention_mask is not None:
        mask = attention_mask.to(torch.bool)
        lengths = mask.sum(1)
        first = mask.to(torch.int8).argmax(1)
        span = torch.arange(seq, device=device)
        expected = (span >= first[:, None]) & (span < (first + lengths)[:, None])
        if not torch.equal(expected, mask):
            return None
        keep = mask.reshape(-1).nonzero().squeeze(1)
        positions = (mask.cumsum(1) - 1).reshape(-1).index_select(0, keep)
        lengths_list = [n for n in lengths.tolist() if n > 0]
    elif position_ids is not None:
        flat = position_ids.reshape(-1)
        starts = flat == 0
        starts = starts.reshape(batch, seq)
        starts[:, 0] = True
        starts = starts.reshape(-1)
        previous = torch.cat([flat.new_full((1,), -1), flat[:-1]])
        if not bool(((flat == previous + 1) | starts).all()) or not bool((flat[starts] == 0).all()):
            return None
        keep, positions = None, flat
        bounds = starts.nonzero().squeeze(1).tolist() + [batch * seq]
        lengths_list = [b - a for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    else:
        keep = None
        positions = torch.arange(seq, device=device).repeat(batch)
        lengths_list = [seq] * batch
    offsets = [0]
    for n in lengths_list:
        offsets.append(offsets[-1] + n)
    cu = torch.tensor(offsets, dtype=torch.int32, device=device)
    return TokenLayout(keep=keep, positions=positions, cu_seqlens=cu,
                       max_len=max(lengths_list, default=0), lengths=lengths_list)


def _make_flash():
    import torch

    class FlashVarlen(torch.autograd.Function):
        @staticmethod
        def forward(ctx, q, k, v, cu, max_len, scale):
            out, lse, seed, offset, _ = torch.ops.aten._flash_attention_forward(
                q, k, v, cu, cu, max_len, max_len, 0.0, True, False, scale=scale)
            ctx.save_for_backward(q, k, v, out, lse, cu, seed, offset)
            ctx.max_len, ctx.scale = max_len, scale
            return out

        @staticmethod
        def backward(ctx, grad):
            q, k, v, out, lse, cu, seed, offset = ctx.saved_tensors
            dq, dk, dv = torch.ops.aten._flash_attention_backward(
                grad.contiguous(), q, k, v, out, lse, cu, cu, ctx.max_len, ctx.max_len, 0.0, True,
                seed, offset, scale=ctx.scale)
            return dq, dk, dv, None, None, None

    return FlashVarlen


_FLASH: list = []


def _reference(q, k, v, layout: TokenLayout, scale: float):
    """SDPA per sequence (any device, any dtype): the definition the flash path must match."""
    import torch

    groups = q.shape[1] // k.shape[1]
    outputs, start = [], 0
    for n in layout.lengths:
        qs, ks, vs = (t[start : start + n].transpose(0, 1)[None] for t in (q, k, v))
        if groups > 1:
            ks, vs = ks.repeat_interleave(groups, dim=1), vs.repeat_interleave(groups, dim=1)
        out = torch.nn.functional.scaled_dot_product_attention(qs, ks, vs, is_causal=True, scale=scale)
        outputs.append(out[0].transpose(0, 1))
        start += n
    return torch.cat(outputs) if outputs else q.new_zeros(q.shape)


def _equal_lengths(q, k, v, layout: TokenLayout, scale: float):
    """Sequences of one length: batched SDPA, cuDNN's attention first (faster than flash 2 on
    an H100: 0.21 vs 0.34 ms forward per 1B layer at 4 x 2048 tokens, bench/results)."""
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel

    count, length = len(layout.lengths), layout.lengths[0]
    heads, kv_heads, dim = q.shape[1], k.shape[1], q.shape[2]
    groups = heads // kv_heads

    def batched(t):
        t = t.view(count, length, t.shape[1], dim)
        if t.shape[2] != heads:  # grouped-query heads, expanded (cuDNN takes equal heads)
            t = t[:, :, :, None, :].expand(count, length, kv_heads, groups, dim).reshape(count, length, heads, dim)
        return t.transpose(1, 2)

    order = [SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION,
             SDPBackend.MATH]
    try:
        context = sdpa_kernel(order, set_priority=True)
    except TypeError:  # older torch: no priorities, its own order
        context = sdpa_kernel(order)
    with context:
        out = torch.nn.functional.scaled_dot_product_attention(
            batched(q), batched(k), batched(v), is_causal=True, scale=scale)
    return out.transpose(1, 2).reshape(q.shape)


def causal_attention(q, k, v, layout: TokenLayout, scale: float):
    """Causal attention inside each sequence. q: [tokens, heads, dim]; k, v: [tokens, kv_heads, dim]."""
    import torch

    if q.is_cuda and len(set(layout.lengths)) == 1:
        return _equal_lengths(q, k, v, layout, scale)
    flash_ok = (q.is_cuda and q.dtype in (torch.bfloat16, torch.float16) and q.shape[-1] % 8 == 0
                and q.shape[-1] <= 256)
    if not flash_ok:
        return _reference(q, k, v, layout, scale)
    if not _FLASH:
        _FLASH.append(_make_flash())
    return _FLASH[0].apply(q.contiguous(), k.contiguous(), v.contiguous(), layout.cu_seqlens,
                           layout.max_len, scale)
