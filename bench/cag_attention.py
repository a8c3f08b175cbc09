"""Check and time the split-KV attention on the GPU: a few query rows over a long cache.

Compares, for packed rows (query heads of a GQA group x question tokens) over `keys` cached
tokens with a causal tail and stale entries past the length:

    reference   float32 matrix products (`attention_with_lse_math`, no split)
    split-KV    `infuse.llm.attention.split_kv_attention` (PyTorch's efficient kernel per chunk)
    packed SDPA one SDPA call with the mask tiled over the packed rows (the old infuse path)

Relative error ||out - ref|| / ||ref|| and median time over CUDA events. Called by bench/cag.py;
also runs alone: PYTHONPATH=$PWD python bench/cag_attention.py
"""

from __future__ import annotations

import statistics

import torch
import torch.nn.functional as functional

from infuse.llm.attention import (
    attention_with_lse_math,
    packed_bias,
    split_chunk,
    split_kv_attention,
    split_kv_backend,
)


def _time_ms(function, repeats: int = 20) -> float:
    function()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        function()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def check_attention(
    keys: int,
    tokens: int,
    *,
    kv_heads: int = 8,
    groups: int = 4,
    head_dim: int = 128,
    seed: int = 0,
) -> dict:
    """One shape: errors and timings of split-KV and packed SDPA against the float32 reference."""
    device, dtype = "cuda", torch.bfloat16
    generator = torch.Generator(device=device).manual_seed(seed)
    rows = groups * tokens
    query = torch.randn(
        1, kv_heads, rows, head_dim, device=device, dtype=dtype, generator=generator
    )
    key = torch.randn(1, kv_heads, keys, head_dim, device=device, dtype=dtype, generator=generator)
    value = torch.randn(
        1, kv_heads, keys, head_dim, device=device, dtype=dtype, generator=generator
    )
    length = keys - 300  # the cache's current end: entries past it are stale
    positions = torch.arange(length - tokens, length, device=device)
    mask = (torch.arange(keys, device=device)[None, :] <= positions[:, None])[None, None]
    bias = packed_bias(mask, groups, dtype)
    scale = head_dim**-0.5

    reference, _ = attention_with_lse_math(query, key, value, bias[:, :keys], scale)
    reference = reference.float()

    def split():
        return split_kv_attention(query, key, value, packed_bias(mask, groups, dtype), scale)

    tiled = mask.repeat(1, 1, groups, 1)

    def packed_sdpa():
        return functional.scaled_dot_product_attention(
            query, key, value, attn_mask=tiled, scale=scale
        )

    result = {"keys": keys, "rows": rows, "chunk": split_chunk(keys, kv_heads)}
    for name, function in (("split", split), ("sdpa", packed_sdpa)):
        output = function().float()
        error = ((output - reference).norm() / reference.norm()).item()
        result[f"{name}_error"] = error
        result[f"{name}_ms"] = _time_ms(function)
    result["kv_read_floor_ms"] = 2 * keys * kv_heads * head_dim * 2 / 3.0e12 * 1e3
    result["backend"] = split_kv_backend()
    return result


def run_checks(sizes=(5120, 17152, 33536, 66304), tokens=(20, 1)) -> list[dict]:
    """All shapes; prints one line each."""
    results = []
    for keys in sizes:
        for count in tokens:
            result = check_attention(keys, count, seed=keys + count)
            results.append(result)
            print(
                f"attention keys={keys} rows={result['rows']} chunk={result['chunk']}: "
                f"split {result['split_ms']:.3f} ms (error {result['split_error']:.1e}), "
                f"packed SDPA {result['sdpa_ms']:.3f} ms (error {result['sdpa_error']:.1e}), "
                f"K+V read floor {result['kv_read_floor_ms']:.3f} ms; {result['backend']}",
                flush=True,
            )
    return results


if __name__ == "__main__":
    run_checks()
