"""Attention for long cached prefixes: grouped keys never copied, long caches split across the GPU.

transformers' SDPA path repeats each key/value head for every query head of its group
(`repeat_kv`) whenever a mask is present, as it is when a question is appended to a cached
knowledge prefix. Here the query heads of a group are folded into the rows instead (the group
shares its keys), so the cached keys/values are read once, unrepeated.

A few query rows over a long cache (a 20-token question, or one decoded token, over 64k cached
tokens) is a second problem: one attention kernel gets a thread block per (head, 64 rows) and
each walks all the keys, so 16 blocks keep 132 multiprocessors busy. `split_kv_attention` cuts
the keys into chunks that run as a batch (flash-decoding), each chunk returning its softmax
normaliser (log-sum-exp), and merges them exactly.

`use_packed_gqa_attention(model, split_kv=...)` switches a loaded model to it explicitly; nothing
is patched at import time.
"""

from __future__ import annotations

import math

ATTENTION_NAME = "infuse_sdpa"
MASKED = -1.0e30  # finite, so a chunk whose keys are all masked merges with weight 0, not NaN
SPLIT_MAX_ROWS = 256  # split only short queries (packed rows = query heads per KV head x tokens)
SPLIT_MIN_KEYS = 1024  # and only caches long enough to be worth cutting
CHUNK_GRANULE = 256  # chunk lengths are multiples of this (alignment; divides static caches)
SPLIT_MODES = ("auto", "always", "never")
_SPLIT_ATTRIBUTE = "infuse_split_kv"


def packed_gqa_sdpa(
    module,
    query,
    key,
    value,
    attention_mask,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs,
):
    """Attention with transformers' signature: query [b, h, q, d], key/value [b, kv heads, k, d].

    Returns (output [b, q, h, d], None).
    """
    import torch.nn.functional as functional

    batch, heads, q_length, head_dim = query.shape
    kv_heads = key.shape[1]
    groups = heads // kv_heads
    # No mask means plain causal from position 0 (transformers drops the mask only then, e.g. the
    # prefill of an empty static cache): SDPA's upper-left `is_causal` is exactly that.
    if attention_mask is None:
        causal = q_length > 1 and (
            is_causal if is_causal is not None else getattr(module, "is_causal", True)
        )
        output = functional.scaled_dot_product_attention(
            query, key, value, is_causal=bool(causal), scale=scaling, enable_gqa=groups > 1
        )
    elif _should_split(module, query, key, attention_mask, groups):
        # Head h = kv * groups + r (repeat_kv's order): fold r into the rows.
        packed = query.reshape(batch, kv_heads, groups * q_length, head_dim)
        bias = packed_bias(attention_mask, groups, query.dtype)
        output = split_kv_attention(packed, key, value, bias, scaling)
        output = output.reshape(batch, heads, q_length, head_dim)
    elif groups > 1 and attention_mask.shape[1] == 1:
        packed = query.reshape(batch, kv_heads, groups * q_length, head_dim)
        mask = attention_mask.repeat(1, 1, groups, 1)
        output = functional.scaled_dot_product_attention(
            packed, key, value, attn_mask=mask, scale=scaling
        )
        output = output.reshape(batch, heads, q_length, head_dim)
    else:
        key = key.repeat_interleave(groups, dim=1)
        value = value.repeat_interleave(groups, dim=1)
        output = functional.scaled_dot_product_attention(
            query, key, value, attn_mask=attention_mask, scale=scaling
        )
    return output.transpose(1, 2).contiguous(), None


def use_packed_gqa_attention(model, *, split_kv: str = "auto") -> None:
    """Register `infuse_sdpa` with transformers and switch `model` to it (SDPA's masks are reused).

    `split_kv`: "auto" splits long caches on CUDA only; "always" splits every short query on any
    device (for tests); "never".
    """
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    if split_kv not in SPLIT_MODES:
        raise ValueError(f"split_kv={split_kv!r}: use one of {', '.join(SPLIT_MODES)}.")
    AttentionInterface.register(ATTENTION_NAME, packed_gqa_sdpa)
    ALL_MASK_ATTENTION_FUNCTIONS.register(ATTENTION_NAME, sdpa_mask)
    try:
        model.set_attn_implementation(ATTENTION_NAME)
    except (AttributeError, ValueError):
        model.config._attn_implementation = ATTENTION_NAME
    # The setting lives on the attention modules transformers hands to the function.
    for module in model.modules():
        if hasattr(module, "layer_idx"):
            setattr(module, _SPLIT_ATTRIBUTE, split_kv)


def _should_split(module, query, key, attention_mask, groups: int) -> bool:
    mode = getattr(module, _SPLIT_ATTRIBUTE, "auto")
    if mode == "never" or (mode == "auto" and not query.is_cuda):
        return False
    rows = groups * query.shape[2]
    return (
        query.shape[0] == 1
        and attention_mask.shape[0] == 1
        and attention_mask.shape[1] == 1
        and rows <= SPLIT_MAX_ROWS
        and (mode == "always" or key.shape[2] >= SPLIT_MIN_KEYS)
    )


# The last mask seen and the bias made from it: every layer of one forward gets the same mask
# object, so the bias is built once per forward. Holding the mask keeps its identity unique.
_last_bias: dict[str, object] = {}


def packed_bias(attention_mask, groups: int, dtype):
    """Additive bias [groups * q, keys padded to 8] for packed rows, from a [1, 1, q, keys] mask.

    Row r * q + i (query head r of a group, token i) gets token i's mask row: 0 where it may
    attend, MASKED where not. Boolean and additive (float) masks are both taken.
    """
    import torch

    cached = _last_bias.get("mask")
    key = (groups, dtype)
    if cached is attention_mask and _last_bias.get("key") == key:
        return _last_bias["bias"]
    rows = attention_mask[0, 0]  # [q, keys]
    q_length, keys = rows.shape
    padded = -(-keys // 8) * 8  # the kernel wants 16-byte aligned bias rows
    bias = torch.full((groups, q_length, padded), MASKED, dtype=dtype, device=rows.device)
    if rows.dtype == torch.bool:
        bias[:, :, :keys].masked_fill_(rows, 0.0)
    else:
        bias[:, :, :keys] = rows.to(dtype).clamp(min=MASKED)
    bias = bias.view(groups * q_length, padded)
    _last_bias.update(mask=attention_mask, key=key, bias=bias)
    return bias


def split_chunk(keys: int, kv_heads: int, multiprocessors: int = 132) -> int:
    """Chunk length for `keys` cached tokens: enough chunks to fill the GPU twice over.

    A multiple of CHUNK_GRANULE. A length within half to twice the first choice that divides
    `keys` is preferred (no ragged last chunk to run on its own), the closest one.
    """
    splits = max(1, math.ceil(2 * multiprocessors / kv_heads))
    chunk = max(CHUNK_GRANULE, math.ceil(keys / splits / CHUNK_GRANULE) * CHUNK_GRANULE)
    low = max(CHUNK_GRANULE, chunk // 2 // CHUNK_GRANULE * CHUNK_GRANULE)
    dividing = [size for size in range(low, 2 * chunk + 1, CHUNK_GRANULE) if keys % size == 0]
    return min(dividing, key=lambda size: abs(size - chunk)) if dividing else chunk


def split_kv_attention(
    query, key, value, bias, scale: float | None = None, *, chunk: int | None = None
):
    """Exact attention of `query` [1, kv, rows, d] over `key`/`value` [1, kv, keys, d], keys split.

    `bias` is the additive [rows, >= keys] bias from `packed_bias` (or None). Chunks of `chunk`
    keys (default `split_chunk`) run as one batch; a ragged last part runs on its own; their
    outputs are merged with softmax weights of their log-sum-exps. Returns [1, kv, rows, d].
    """

    _, kv_heads, rows, head_dim = query.shape
    keys = key.shape[2]
    scale = head_dim**-0.5 if scale is None else scale
    if chunk is None:
        chunk = split_chunk(keys, kv_heads, _multiprocessors(query.device))
    if query.is_cuda and _use_triton(query, head_dim):
        from infuse.llm.split_kv_kernel import split_kv_partials

        output, lse = split_kv_partials(query, key, value, bias, scale, chunk)
        return _merge([output], [lse], query.dtype)
    count = keys // chunk
    outputs, lses = [], []
    if count:
        main = count * chunk
        # [1, kv, main, d] -> [count, kv, chunk, d]: views, nothing copied.
        chunk_keys = key[0, :, :main].unflatten(1, (count, chunk)).transpose(0, 1)
        chunk_values = value[0, :, :main].unflatten(1, (count, chunk)).transpose(0, 1)
        chunk_bias = None
        if bias is not None:
            chunk_bias = bias[:, :main].unflatten(1, (count, chunk)).transpose(0, 1)
            chunk_bias = chunk_bias.unsqueeze(1).expand(count, kv_heads, rows, chunk)
        output, lse = attention_with_lse(
            query.expand(count, kv_heads, rows, head_dim),
            chunk_keys,
            chunk_values,
            chunk_bias,
            scale,
        )
        outputs.append(output)
        lses.append(lse)
    done = count * chunk
    if done < keys:
        tail_bias = None
        if bias is not None:
            tail_bias = bias[:, done:keys].unsqueeze(0).unsqueeze(0)
            tail_bias = tail_bias.expand(1, kv_heads, rows, keys - done)
        output, lse = attention_with_lse(
            query, key[:, :, done:], value[:, :, done:], tail_bias, scale
        )
        outputs.append(output)
        lses.append(lse)
    if len(outputs) == 1 and outputs[0].shape[0] == 1:
        return outputs[0]
    return _merge(outputs, lses, query.dtype)


def _merge(outputs: list, lses: list, dtype):
    """Chunk outputs [parts, kv, rows, d] merged with softmax weights of their log-sum-exps."""
    import torch

    output = torch.cat(outputs) if len(outputs) > 1 else outputs[0]
    lse = torch.cat(lses) if len(lses) > 1 else lses[0]
    weights = torch.softmax(lse, dim=0).unsqueeze(-1)  # [parts, kv, rows, 1], fp32
    return (weights * output).sum(dim=0, keepdim=True).to(dtype)


# Set once if PyTorch's efficient kernel refuses our inputs (then the float32 path is used).
_efficient_kernel_error: dict[str, str] = {}
# The Triton split-KV kernel's state: "ok" once it matched the reference on this machine, or why
# it is not used (import failure, a failed check); the efficient kernel runs then.
_triton_state: dict[str, str] = {}


def split_kv_backend() -> str:
    """Which kernel the CUDA split-KV path runs: "triton", "efficient", or "math (why...)"."""
    if _triton_state.get("state") == "ok":
        return "triton"
    error = _efficient_kernel_error.get("error")
    base = "efficient" if error is None else f"math ({error})"
    why = _triton_state.get("state")
    return base if why is None else f"{base}; triton not used: {why}"


def _use_triton(query, head_dim: int) -> bool:
    """True when the Triton kernel runs here: checked once against float32 math on first use.

    Never checked while a CUDA graph is being captured (the check synchronises): until a check
    has passed, the efficient kernel runs.
    """
    import torch

    state = _triton_state.get("state")
    if state is not None:
        return state == "ok"
    if head_dim & (head_dim - 1) or head_dim < 16 or torch.cuda.is_current_stream_capturing():
        return False
    try:
        from infuse.llm.split_kv_kernel import split_kv_partials

        generator = torch.Generator(device=query.device).manual_seed(0)
        shape = (1, 2, 20, head_dim)
        q = torch.randn(shape, device=query.device, dtype=query.dtype, generator=generator)
        k, v = (torch.randn(1, 2, 1000, head_dim, device=query.device, dtype=query.dtype,
                            generator=generator) for _ in range(2))
        bias = torch.zeros(20, 1000, device=query.device, dtype=query.dtype)
        bias[:, 990:] = MASKED
        expected, _ = attention_with_lse_math(q, k, v, bias, head_dim**-0.5)
        output, lse = split_kv_partials(q, k, v, bias, head_dim**-0.5, 256)
        got = _merge([output], [lse], query.dtype).float()
        error = float((got - expected.float()).norm() / expected.float().norm())
        _triton_state["state"] = "ok" if error < 2e-2 else f"error {error:.1e} against the reference"
    except Exception as failure:  # noqa: BLE001 - any failure: the efficient kernel stays
        _triton_state["state"] = f"{type(failure).__name__}: {str(failure).splitlines()[0][:200]}"
    return _triton_state["state"] == "ok"


def attention_with_lse(query, key, value, bias, scale: float):
    """Softmax attention [B, H, rows, d] and its natural log-sum-exp [B, H, rows] (fp32).

    On CUDA, PyTorch's memory-efficient kernel (it returns the log-sum-exp); elsewhere, or if
    that kernel refuses the inputs, plain float32 matrix products.
    """
    if query.is_cuda and "error" not in _efficient_kernel_error:
        import torch

        kernel = torch.ops.aten._scaled_dot_product_efficient_attention
        try:
            try:
                output, lse, _, _ = kernel(query, key, value, bias, True, 0.0, False, scale=scale)
            except RuntimeError:
                # A broadcast query (batch stride 0) may be refused: copy it, it is small.
                output, lse, _, _ = kernel(
                    query.contiguous(), key, value, bias, True, 0.0, False, scale=scale
                )
            return output, lse[..., : query.shape[2]]
        except RuntimeError as error:
            _efficient_kernel_error["error"] = str(error).splitlines()[0][:200]
    return attention_with_lse_math(query, key, value, bias, scale)


def attention_with_lse_math(query, key, value, bias, scale: float):
    """`attention_with_lse` by float32 matrix products (the reference, and the CPU path)."""
    import torch

    scores = torch.matmul(query.float(), key.float().transpose(-1, -2)) * scale
    if bias is not None:
        scores = scores + bias.float()
    lse = torch.logsumexp(scores, dim=-1)
    probabilities = torch.exp(scores - lse.unsqueeze(-1))
    output = torch.matmul(probabilities, value.float())
    return output.to(query.dtype), lse


_multiprocessor_counts: dict[str, int] = {}


def _multiprocessors(device) -> int:
    name = str(device)
    if name not in _multiprocessor_counts:
        count = 132
        if getattr(device, "type", "") == "cuda":
            import torch

            count = torch.cuda.get_device_properties(device).multi_processor_count
        _multiprocessor_counts[name] = count
    return _multiprocessor_counts[name]
