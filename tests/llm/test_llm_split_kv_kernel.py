"""The Triton split-KV (flash-decoding) kernel, run by Triton's interpreter on the CPU, merges to
the same attention as float64 math: packed GQA rows, a causal tail, stale entries, ragged chunks.

The interpreter must be on before Triton is first imported (its standard functions are decorated
then), so the kernel runs in a fresh Python process with TRITON_INTERPRET=1.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="needs triton")

CASES = [(4, 300, 128, 64), (20, 513, 256, 32), (80, 200, 64, 16)]  # rows, keys, chunk, head dim


def relative_errors(cases) -> list[float]:
    """||kernel merged - float64 attention|| / ||float64 attention|| for each case (CPU tensors)."""
    import torch

    from infuse.llm.attention import MASKED, _merge
    from infuse.llm.split_kv_kernel import split_kv_partials

    errors = []
    for rows, keys, chunk, head_dim in cases:
        generator = torch.Generator().manual_seed(rows + keys)
        kv = 2
        query = torch.randn(1, kv, rows, head_dim, generator=generator)
        key = torch.randn(1, kv, keys, head_dim, generator=generator)
        value = torch.randn(1, kv, keys, head_dim, generator=generator)
        bias = torch.zeros(rows, -(-keys // 8) * 8)
        bias[:, keys - 7 :] = MASKED  # stale entries past the cache's length
        for row in range(rows):  # a causal tail: later rows see more of the last keys
            bias[row, keys - 40 + row % 30 : keys - 7] = MASKED
        output, lse = split_kv_partials(query, key, value, bias, head_dim**-0.5, chunk)
        assert output.shape == (-(-keys // chunk), kv, rows, head_dim) and lse.shape == output.shape[:3]
        got = _merge([output], [lse], torch.float32).double()
        scores = query.double() @ key.double().transpose(-1, -2) * head_dim**-0.5 + bias[:, :keys].double()
        expected = torch.softmax(scores, dim=-1) @ value.double()
        errors.append(float((got - expected).norm() / expected.norm()))
    return errors


@pytest.fixture(scope="module")
def errors() -> list[float]:
    root = Path(__file__).resolve().parents[2]
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); "
            "from test_llm_split_kv_kernel import CASES, relative_errors; "
            "print('ERRORS ' + json.dumps(relative_errors(CASES)))")
    env = {**os.environ, "TRITON_INTERPRET": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent)], capture_output=True,
                          text=True, env=env, timeout=600)
    lines = [line for line in done.stdout.splitlines() if line.startswith("ERRORS ")]
    assert lines, done.stderr[-2000:]
    return json.loads(lines[0][7:])


@pytest.mark.parametrize("case", range(len(CASES)))
def test_split_kv_kernel_merges_to_exact_attention(errors, case):
    assert errors[case] < 1e-5, (CASES[case], errors[case])
