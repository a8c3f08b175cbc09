"""infuse's own decoder forward (fused LoRA Functions, varlen attention, offloaded checkpoints)
computes the same loss and LoRA gradients as transformers + peft, for padded, packed and
fixed-length batches, with and without gradient checkpointing."""

from __future__ import annotations

import pytest
import torch

from infuse.train.examples import IGNORE
from infuse.train.fast_decoder import install_fast_decoder, installed
from infuse.train.model import loss_sum
from infuse.train.varlen_attention import layout_of

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def _lora_model(seed: int = 0, dropout: float = 0.0, bias: bool = True, targets=TARGETS):
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=97, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                         attention_bias=bias, mlp_bias=bias, tie_word_embeddings=False)
    model = LlamaForCausalLM(config).to(torch.float64)
    model.config.use_cache = False
    # init_lora_weights=False: B is random too, so every LoRA weight gets a nonzero gradient
    lora = LoraConfig(r=4, lora_alpha=8, lora_dropout=dropout, target_modules=targets,
                      init_lora_weights=False)
    return get_peft_model(model, lora).to(torch.float64)


def _batch(kind: str):
    generator = torch.Generator().manual_seed(7)
    ids = torch.randint(3, 97, (3, 12), generator=generator)
    targets = torch.cat([ids[:, 1:], torch.full((3, 1), IGNORE)], dim=1)
    if kind == "fixed":
        return {"input_ids": ids, "targets": targets}
    if kind == "padded":
        mask = torch.ones_like(ids)
        mask[0, 9:] = 0
        mask[2, 5:] = 0
        targets = targets.masked_fill(mask == 0, IGNORE)
        targets[0, 8] = targets[2, 4] = IGNORE
        return {"input_ids": ids.masked_fill(mask == 0, 0), "targets": targets, "attention_mask": mask}
    lengths = [5, 9, 4, 10]  # packed: one row of four sequences
    positions = torch.cat([torch.arange(n) for n in lengths])[None]
    flat_ids = torch.randint(3, 97, (1, sum(lengths)), generator=generator)
    flat_targets = torch.cat([torch.cat([flat_ids[0, s + 1 : s + n], torch.tensor([IGNORE])])
                              for s, n in zip([0, 5, 14, 18], lengths, strict=True)])[None]
    return {"input_ids": flat_ids, "targets": flat_targets, "position_ids": positions}


def _close(grad, reference, name):
    """Relative error far below any math mistake; the reference's float32 RMSNorm and
    cross-entropy steps round differently ordered float64 sums to ~1e-7."""
    error = float((grad - reference).norm() / reference.norm())
    assert error < 1e-5, f"{name}: relative error {error:.2e}"


def assert_same_step(got, reference):
    """One training step (loss, token count, LoRA grads) matches the reference step: same loss
    and count, every one of the 2 layers x 7 projections x A/B grads non-zero and close."""
    (loss, count, grads), (ref_loss, ref_count, ref_grads) = got, reference
    assert count == ref_count
    assert loss == pytest.approx(ref_loss, rel=1e-10)
    assert set(grads) == set(ref_grads) and len(grads) == 2 * 7 * 2
    for name, grad in grads.items():
        assert ref_grads[name].abs().sum() > 0, name
        _close(grad, ref_grads[name], name)


def _loss_and_grads(model, batch):
    model.zero_grad(set_to_none=True)
    total, count = loss_sum(model, batch)
    (total / count).backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.requires_grad}
    return float(total.detach()), count, grads


@pytest.mark.parametrize("kind", ["fixed", "padded", "packed"])
@pytest.mark.parametrize("checkpointing", [False, True])
def test_fast_decoder_matches_peft(kind, checkpointing):
    model = _lora_model()
    model.train()
    if checkpointing:
        model.get_base_model().gradient_checkpointing_enable(
            gradient_checkpointing_kwargs={"use_reentrant": False})
    batch = _batch(kind)
    reference = _loss_and_grads(model, batch)
    assert install_fast_decoder(model) is not None and installed(model) is not None
    assert_same_step(_loss_and_grads(model, batch), reference)


def test_fast_decoder_eval_without_grad_matches():
    model = _lora_model(seed=3).eval()
    batch = _batch("padded")
    with torch.no_grad():
        reference = loss_sum(model, batch)[0]
        install_fast_decoder(model)
        fast = loss_sum(model, batch)[0]
    assert float(fast) == pytest.approx(float(reference), rel=1e-10)


def test_partial_targets_use_plain_linears():
    model = _lora_model(targets=["q_proj", "down_proj"])
    batch = _batch("packed")
    ref_loss, _, ref_grads = _loss_and_grads(model, batch)
    assert install_fast_decoder(model) is not None
    loss, _, grads = _loss_and_grads(model, batch)
    assert loss == pytest.approx(ref_loss, rel=1e-10)
    for name, grad in grads.items():
        _close(grad, ref_grads[name], name)


def test_unsupported_setups_keep_the_plain_path():
    assert install_fast_decoder(_lora_model(dropout=0.1)) is None  # dropout needs peft's path
    model = _lora_model()
    model.get_base_model().model.layers[0].self_attn.q_proj.base_layer.weight.requires_grad_(True)
    assert install_fast_decoder(model) is None  # a trained base weight


def test_layouts():
    fixed = layout_of(torch.zeros(2, 5, dtype=torch.long))
    assert fixed.cu_seqlens.tolist() == [0, 5, 10] and fixed.keep is None and fixed.max_len == 5
    mask = torch.tensor([[1, 1, 1, 0], [0, 1, 1, 1], [1, 1, 1, 1]])  # right, left, none
    padded = layout_of(torch.zeros(3, 4, dtype=torch.long), attention_mask=mask)
    assert padded.cu_seqlens.tolist() == [0, 3, 6, 10]
    assert padded.positions.tolist() == [0, 1, 2, 0, 1, 2, 0, 1, 2, 3]
    assert padded.keep.tolist() == [0, 1, 2, 5, 6, 7, 8, 9, 10, 11]
    holes = torch.tensor([[1, 0, 1, 1]])
    assert layout_of(torch.zeros(1, 4, dtype=torch.long), attention_mask=holes) is None
    packed = layout_of(torch.zeros(1, 7, dtype=torch.long), position_ids=torch.tensor([[0, 1, 2, 0, 1, 0, 1]]))
    assert packed.cu_seqlens.tolist() == [0, 3, 5, 7] and packed.max_len == 3
    skipping = torch.tensor([[0, 1, 3, 4]])
    assert layout_of(torch.zeros(1, 4, dtype=torch.long), position_ids=skipping) is None


def test_in_place_swiglu_backward_matches_autograd():
    from infuse.train.lora_kernels import _swiglu_backward_

    e = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    u = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    dh = torch.randn(6, 5, dtype=torch.float64)
    product = torch.nn.functional.silu(e) * u
    product.backward(dh)
    e2, u2, dh2 = e.detach().clone(), u.detach().clone(), dh.clone()
    _swiglu_backward_(e2, u2, dh2)
    torch.testing.assert_close(e2, e.grad)
    torch.testing.assert_close(u2, u.grad)
    torch.testing.assert_close(dh2, product.detach())


def test_equal_length_attention_matches_per_sequence_reference():
    from infuse.train.varlen_attention import _equal_lengths, _reference

    torch.manual_seed(1)
    layout = layout_of(torch.zeros(3, 10, dtype=torch.long))
    q = torch.randn(30, 4, 8, dtype=torch.float64)
    k, v = torch.randn(30, 2, 8, dtype=torch.float64), torch.randn(30, 2, 8, dtype=torch.float64)
    torch.testing.assert_close(_equal_lengths(q, k, v, layout, 0.3), _reference(q, k, v, layout, 0.3))
