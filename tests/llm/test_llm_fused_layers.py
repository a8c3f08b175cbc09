"""Fused RMSNorm / gated-MLP forwards (what the CAG decode graph replays): same logits, CPU no-op."""

from __future__ import annotations

import torch

from infuse.llm.fused_layers import use_fused_norm_and_mlp


def _tiny_llama(seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=101, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    return LlamaForCausalLM(config).to(torch.bfloat16).eval()


def test_fused_forwards_give_the_same_logits():
    model = _tiny_llama()
    ids = torch.randint(0, 101, (2, 9), generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        before = model(input_ids=ids).logits
    changed = use_fused_norm_and_mlp(model, compiled=False)
    assert changed == ["rms_norm x5", "mlp x2"]  # 2 per layer + the final norm; 1 MLP per layer
    assert use_fused_norm_and_mlp(model, compiled=False) == []  # already switched: left alone
    with torch.inference_mode():
        after = model(input_ids=ids).logits
    assert torch.equal(after, before)


def test_nothing_changes_on_cpu_by_default():
    model = _tiny_llama()
    assert use_fused_norm_and_mlp(model) == []
    assert all("_infuse_norm" not in vars(module) for module in model.modules())


def test_compiled_forwards_match_on_cuda():
    import pytest

    if not torch.cuda.is_available():
        pytest.skip("torch.compile's fused kernels need a CUDA device here")
    model = _tiny_llama(seed=1).cuda()
    ids = torch.randint(0, 101, (1, 33), device="cuda")
    with torch.inference_mode():
        before = model(input_ids=ids).logits.float()
        assert use_fused_norm_and_mlp(model) == ["rms_norm x5", "mlp x2"]
        after = model(input_ids=ids).logits.float()
        step = model(input_ids=ids[:, :1]).logits.float()  # a one-token shape compiles too
    assert float((after - before).norm() / before.norm()) < 1e-2
    assert torch.isfinite(step).all()
