"""Triton kernel: one chunk's cross-entropy and its logits gradient in two passes over the logits.

Per row: pass 1 reads the logits once with an online max / sum-of-exponentials (float32), pass 2
reads them again and overwrites them with softmax - onehot. Two reads and one write of the chunk,
where the compiled formula made three reads and two kernels (profile in
bench/results/train_h100.md). CUDA only; `available()` says whether Triton can be used, and
`infuse.train.loss` falls back to the compiled formula otherwise.
"""

from __future__ import annotations

import functools


@functools.cache
def available() -> bool:
    """True when Triton imports (it ships with CUDA builds of torch)."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


@functools.cache
def _kernel():
    import triton
    import triton.language as tl

    @triton.jit
    def ce_rows(logits, stride, targets, losses, vocab, BLOCK: tl.constexpr):
        row = tl.program_id(0).to(tl.int64)
        base = logits + row * stride
        offsets = tl.arange(0, BLOCK)
        best = tl.full([BLOCK], float("-inf"), tl.float32)
        total = tl.zeros([BLOCK], tl.float32)
        for start in range(0, vocab, BLOCK):
            cols = start + offsets
            x = tl.load(base + cols, mask=cols < vocab, other=float("-inf")).to(tl.float32)
            new = tl.maximum(best, x)
            safe = tl.where(new == float("-inf"), 0.0, new)
            total = total * tl.exp(best - safe) + tl.exp(x - safe)
            best = new
        peak = tl.max(best, 0)
        log_norm = peak + tl.log(tl.sum(total * tl.exp(best - peak), 0))
        target = tl.load(targets + row)
        picked = tl.load(base + target).to(tl.float32)
        tl.store(losses + row, log_norm - picked)
        for start in range(0, vocab, BLOCK):
            cols = start + offsets
            mask = cols < vocab
            x = tl.load(base + cols, mask=mask, other=0.0).to(tl.float32)
            grad = tl.exp(x - log_norm) - tl.where(cols == target, 1.0, 0.0)
            tl.store(base + cols, grad.to(logits.dtype.element_ty), mask=mask)

    return ce_rows


def chunk_loss_and_grad_(logits, targets):
    """Summed cross-entropy of `logits` [rows, vocab] (CUDA, contiguous rows) against `targets`;
    overwrites `logits` with softmax - onehot in its own dtype."""
    import torch

    rows, vocab = logits.shape
    if logits.stride(1) != 1:
        raise ValueError("chunk_loss_and_grad_: logits rows must be contiguous")
    losses = torch.empty(rows, dtype=torch.float32, device=logits.device)
    _kernel()[(rows,)](logits, logits.stride(0), targets.contiguous(), losses, vocab,
                       BLOCK=4096, num_warps=16)
    return losses.sum()
