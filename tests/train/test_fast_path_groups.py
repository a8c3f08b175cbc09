"""The fast path's grouped products on CPU: frozen q/k/v and gate/up re-seated as one tensor each,
and 4-bit NF4 (QLoRA) frozen weights dequantized on use, give the same loss and LoRA gradients as
the reference (peft on dense weights; for NF4, the same model with the dequantized weights)."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from test_fast_path import _batch, _close, _lora_model, _loss_and_grads, assert_same_step

from infuse.train.fast_decoder import install_fast_decoder
from infuse.train.lora_kernels import NF4Weight, fuse_frozen_weights, projection_of

HAS_BNB = importlib.util.find_spec("bitsandbytes") is not None


@pytest.mark.parametrize("kind", ["fixed", "packed"])
def test_fused_frozen_weights_match_peft(kind):
    model = _lora_model(seed=5)
    model.train()
    model.get_base_model().gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    batch = _batch(kind)
    ref_loss, _, ref_grads = _loss_and_grads(model, batch)
    plan = install_fast_decoder(model)
    attention = model.get_base_model().model.layers[0].self_attn
    before = attention.k_proj.base_layer.weight.detach().clone()
    for layer in plan.layers:  # on CUDA install does this; here by hand
        assert fuse_frozen_weights(layer.qkv) and fuse_frozen_weights([layer.gate, layer.up])
    q, k = attention.q_proj.base_layer.weight, attention.k_proj.base_layer.weight
    assert isinstance(k, torch.nn.Parameter) and not k.requires_grad
    assert torch.equal(k, before)  # same values, now right after q's rows in one tensor
    assert k.data_ptr() == q.data_ptr() + q.numel() * q.element_size()
    loss, _, grads = _loss_and_grads(model, batch)
    assert loss == pytest.approx(ref_loss, rel=1e-10)
    for name, grad in grads.items():
        _close(grad, ref_grads[name], name)


def test_fusing_refuses_mixed_or_trainable_weights():
    model = _lora_model()
    layer = install_fast_decoder(model).layers[0]
    layer.qkv[1].weight.requires_grad_(True)
    assert not fuse_frozen_weights(layer.qkv)
    assert not fuse_frozen_weights([layer.gate])  # nothing to fuse


def _quantize_linears(model):
    """Swap every frozen decoder linear (under its LoRA) for a bitsandbytes NF4 Linear4bit; return
    {name: dense float64 weight it now stands for} (the dequantized values)."""
    import bitsandbytes as bnb
    import bitsandbytes.functional as bnb_functional

    dense = {}
    for name, module in model.named_modules():
        base = getattr(module, "base_layer", None)
        if type(base) is not torch.nn.Linear:
            continue
        quantized = bnb.nn.Linear4bit(base.in_features, base.out_features, bias=base.bias is not None,
                                      compute_dtype=torch.bfloat16, quant_type="nf4",
                                      compress_statistics=True)
        quantized.weight = bnb.nn.Params4bit(base.weight.detach().to(torch.bfloat16), requires_grad=False,
                                             quant_type="nf4", compress_statistics=True)
        if base.bias is not None:
            quantized.bias = torch.nn.Parameter(base.bias.detach().clone(), requires_grad=False)
        quantized = quantized.to("cpu")  # quantizes
        module.base_layer = quantized
        state = quantized.weight.quant_state
        dense[name] = bnb_functional.dequantize_4bit(quantized.weight, state).to(torch.float64)
    return dense


@pytest.mark.skipif(not HAS_BNB, reason="needs bitsandbytes")
@pytest.mark.parametrize("kind", ["padded", "packed"])
def test_nf4_weights_match_their_dequantized_twin(kind):
    quantized = _lora_model(seed=2)
    twin = _lora_model(seed=2)
    dense = _quantize_linears(quantized)
    assert len(dense) == 2 * 7
    twin_modules = dict(twin.named_modules())
    with torch.no_grad():
        for name, weight in dense.items():
            twin_modules[name].base_layer.weight.copy_(weight)
    attention = quantized.get_base_model().model.layers[1].self_attn
    assert isinstance(projection_of(attention.v_proj).weight, NF4Weight)
    for model in (quantized, twin):
        model.train()
        model.get_base_model().gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        assert install_fast_decoder(model) is not None
    batch = _batch(kind)
    assert_same_step(_loss_and_grads(quantized, batch), _loss_and_grads(twin, batch))


def test_adjacent_addresses_in_separate_storages_are_not_one_tensor():
    from infuse.train.lora_kernels import _adjacent_rows, _side_by_side

    block = torch.arange(24, dtype=torch.float64)
    first, second = block[:12].view(3, 4), block[12:].view(3, 4)
    assert torch.equal(_adjacent_rows([first, second], torch.float64), block.view(6, 4))
    apart = second.clone()  # its own storage, wherever the allocator put it
    assert _adjacent_rows([first, apart], torch.float64) is None
    wide = torch.arange(30, dtype=torch.float64).view(5, 6)
    assert torch.equal(_side_by_side([wide[:, :2], wide[:, 2:]]), wide)
    assert _side_by_side([wide[:, :2], wide[:, 2:].clone()]) is None
