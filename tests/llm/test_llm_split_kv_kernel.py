"""The Triton split-KV (flash-decoding) kernel, run by Triton's interpreter on the CPU, merges to
the same attention as float64 math: packed GQA rows, a causal tail, stale entries, ragged chunks."""

from __future__ import annotations

import importlib.util

import pytest
import torch

pytestmark = pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="needs triton")


@pytest.fixture
def interpreted(monkeypatch):
    from infuse.llm import split_kv_kernel

    monkeypatch.setenv("TRITON_INTERPRET", "1")
    monkeypatch.setattr(split_kv_kernel, "_KERNEL", [])  # built again, interpreted
    return split_kv_kernel.split_kv_partials


@pytest.mark.parametrize(("rows", "keys", "chunk", "head_dim"),
                         [(4, 300, 128, 64), (20, 513, 256, 32), (80, 200, 64, 16)])
def test_split_kv_kernel_merges_to_exact_attention(interpreted, rows, keys, chunk, head_dim):
    from infuse.llm.attention import MASKED, _merge

    generator = torch.Generator().manual_seed(rows + keys)
    kv = 2
    query = torch.randn(1, kv, rows, head_dim, generator=generator)
    key = torch.randn(1, kv, keys, head_dim, generator=generator)
    value = torch.randn(1, kv, keys, head_dim, generator=generator)
    padded = -(-keys // 8) * 8
    bias = torch.zeros(rows, padded)
    bias[:, keys - 7 :] = MASKED  # stale entries past the cache's length
    for row in range(rows):  # a causal tail: later rows see more of the last keys
        bias[row, keys - 40 + row % 30 : keys - 7] = MASKED
    output, lse = interpreted(query, key, value, bias, head_dim**-0.5, chunk)
    assert output.shape == (-(-keys // chunk), kv, rows, head_dim) and lse.shape == output.shape[:3]
    got = _merge([output], [lse], torch.float32)

    scores = query.double() @ key.double().transpose(-1, -2) * head_dim**-0.5 + bias[:, :keys].double()
    expected = torch.softmax(scores, dim=-1) @ value.double()
    error = float((got.double() - expected).norm() / expected.norm())
    assert error < 1e-5, error
