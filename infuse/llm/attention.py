"""Attention for long cached prefixes: SDPA that never copies grouped keys/values.

transformers' SDPA path repeats each key/value head for every query head of its group
(`repeat_kv`) whenever a mask is present, as it is when a question is appended to a cached
knowledge prefix. At 64k cached tokens with Llama-3.1-8B's 4 query heads per KV head that is
32 GiB of copies per forward. Here the query heads of a group are folded into the sequence
axis instead (the group shares its keys), so the cached keys/values are read once, unrepeated.

`use_packed_gqa_attention(model)` switches a loaded model to it explicitly; nothing is patched
at import time.
"""

from __future__ import annotations

ATTENTION_NAME = "infuse_sdpa"


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
    elif groups > 1 and attention_mask.shape[1] == 1:
        # Head h = kv * groups + r (repeat_kv's order): fold r into the rows, tile the mask to match.
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


def use_packed_gqa_attention(model) -> None:
    """Register `infuse_sdpa` with transformers and switch `model` to it (SDPA's masks are reused)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(ATTENTION_NAME, packed_gqa_sdpa)
    ALL_MASK_ATTENTION_FUNCTIONS.register(ATTENTION_NAME, sdpa_mask)
    try:
        model.set_attn_implementation(ATTENTION_NAME)
    except (AttributeError, ValueError):
        model.config._attn_implementation = ATTENTION_NAME
