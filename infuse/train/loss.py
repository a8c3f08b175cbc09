"""Cross-entropy straight from hidden states, never holding the full logits.

A 128k-vocabulary model at 8k tokens per step would hold 8k x 128k float32 logits (4 GiB) plus
their gradient. Here only rows that are trained (target != -100) are projected, a chunk of
rows at a time; the gradient with respect to the hidden states is computed in the same pass
and kept (it is as small as the hidden states), so nothing vocabulary-sized outlives a chunk.
Works on CPU and CUDA alike; it is a plain torch.autograd.Function, no patching.
"""

from __future__ import annotations

IGNORE = -100


def _chunk_rows(vocab_size: int, budget_elements: int = 64 * 1024 * 1024) -> int:
    """Rows per chunk so that one chunk's float32 logits stay near `budget_elements`."""
    return max(16, budget_elements // max(vocab_size, 1))


def linear_cross_entropy_sum(hidden, weight, targets, *, chunk_rows: int | None = None):
    """Sum of token cross-entropies of `hidden @ weight.T` against `targets` (-100: skipped).

    hidden: [..., H]; weight: [V, H] (the output head); targets: [...] aligned with hidden.
    Returns (loss_sum as a float32 scalar, number of trained tokens as an int).
    """
    import torch

    flat_hidden = hidden.reshape(-1, hidden.shape[-1])
    flat_targets = targets.reshape(-1).to(flat_hidden.device)
    rows = torch.nonzero(flat_targets != IGNORE).squeeze(1)
    count = int(rows.numel())
    if count == 0:
        return (flat_hidden.sum() * 0.0).float(), 0
    chunk = chunk_rows or _chunk_rows(weight.shape[0])
    if weight.requires_grad:  # a trained head needs its own gradient: plain (chunk-free) path
        logits = flat_hidden.index_select(0, rows) @ weight.t()
        loss = torch.nn.functional.cross_entropy(
            logits.float(), flat_targets.index_select(0, rows), reduction="sum"
        )
        return loss, count
    loss = _ChunkedLinearCrossEntropy.apply(flat_hidden, weight, flat_targets, rows, chunk)
    return loss, count


def _chunk_loss(logits, targets):
    """Summed cross-entropy of one chunk of logits (float32 arithmetic)."""
    import torch

    values = logits.float()
    log_norm = torch.logsumexp(values, dim=-1)
    picked = values.gather(1, targets.unsqueeze(1)).squeeze(1)
    return (log_norm - picked).sum()


def _chunk_loss_and_grad_(logits, targets):
    """Summed cross-entropy of one chunk; overwrites `logits` with softmax - onehot."""
    import torch

    values = logits.float()
    log_norm = torch.logsumexp(values, dim=-1, keepdim=True)
    picked = values.gather(1, targets.unsqueeze(1))
    onehot = torch.arange(values.shape[1], device=values.device)[None, :] == targets.unsqueeze(1)
    logits.copy_(torch.exp(values - log_norm) - onehot.to(values.dtype))
    return (log_norm - picked).sum()


_COMPILED: dict[str, object] = {}


def _chunk_step(name: str, device_type: str):
    """Eager on CPU; on CUDA compiled once (one fused pass over the chunk's logits)."""
    function = {"loss": _chunk_loss, "grad": _chunk_loss_and_grad_}[name]
    if device_type != "cuda":
        return function
    from infuse.train import ce_kernel

    if name == "grad" and ce_kernel.available():
        return ce_kernel.chunk_loss_and_grad_
    if name not in _COMPILED:
        import torch

        _COMPILED[name] = torch.compile(function, dynamic=True)
    return _COMPILED[name]


def _make_function():
    import torch

    class ChunkedLinearCrossEntropy(torch.autograd.Function):
        @staticmethod
        def forward(ctx, hidden, weight, targets, rows, chunk):
            needs_grad = hidden.requires_grad
            total = torch.zeros((), dtype=torch.float32, device=hidden.device)
            grad_rows = torch.empty((rows.numel(), hidden.shape[1]), dtype=hidden.dtype,
                                    device=hidden.device) if needs_grad else None
            for start in range(0, rows.numel(), chunk):
                index = rows[start : start + chunk]
                chunk_hidden = hidden.index_select(0, index)
                chunk_targets = targets.index_select(0, index)
                logits = chunk_hidden @ weight.t()
                if needs_grad:
                    # d(loss)/d(logits) = softmax - onehot, written over the logits, folded into
                    # the hidden gradient now.
                    total += _chunk_step("grad", logits.device.type)(logits, chunk_targets)
                    grad_rows[start : start + chunk] = (logits.to(weight.dtype) @ weight).to(hidden.dtype)
                else:
                    total += _chunk_step("loss", logits.device.type)(logits, chunk_targets)
                del logits
            ctx.save_for_backward(grad_rows, rows)
            ctx.hidden_shape = hidden.shape
            return total

        @staticmethod
        def backward(ctx, grad_output):
            grad_rows, rows = ctx.saved_tensors
            grad_hidden = torch.zeros(ctx.hidden_shape, dtype=grad_rows.dtype, device=grad_rows.device)
            grad_hidden.index_copy_(0, rows, grad_rows * grad_output.to(grad_rows.dtype))
            return grad_hidden, None, None, None, None

    return ChunkedLinearCrossEntropy


class _Lazy:
    """Builds the autograd Function on first use so importing this module never imports torch."""

    _function = None

    @classmethod
    def apply(cls, *args):
        if cls._function is None:
            cls._function = _make_function()
        return cls._function.apply(*args)


_ChunkedLinearCrossEntropy = _Lazy
