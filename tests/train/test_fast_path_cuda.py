"""On a CUDA GPU (skipped elsewhere): the bf16 fast path (compiled kernels, flash varlen
attention, offloaded checkpoints) agrees with transformers + peft within bf16 rounding.

Also runnable without pytest: `python tests/train/test_fast_path_cuda.py`.
"""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _relative(a, b) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm().clamp_min(1e-30))


def _step(model, batch, *, reset_peak=False):
    """(loss per token, LoRA grads in float32) of one backward pass from zeroed grads."""
    from infuse.train.model import loss_sum

    model.zero_grad(set_to_none=True)
    if reset_peak:
        torch.cuda.reset_peak_memory_stats()
    total, count = loss_sum(model, batch)
    (total / count).backward()
    return (float(total.detach()) / count,
            {n: p.grad.float().clone() for n, p in model.named_parameters() if p.requires_grad})


def _assert_matches(runs, label):
    """The second step's loss within 0.2% and every LoRA grad within 5% of the first's."""
    (ref_loss, ref_grads), (loss, grads) = runs
    assert abs(loss - ref_loss) / ref_loss < 2e-3, (loss, ref_loss)
    worst = max(_relative(grads[n], ref_grads[n]) for n in grads)
    print(f"{label}: loss {loss:.5f} vs {ref_loss:.5f}, worst LoRA grad error {worst:.3g}")
    assert worst < 5e-2, worst

def test_flash_varlen_matches_reference():
    from infuse.train.varlen_attention import TokenLayout, _reference, causal_attention

    torch.manual_seed(0)
    lengths = [300, 17, 1000, 131]
    cu = torch.tensor([0, 300, 317, 1317, 1448], dtype=torch.int32, device="cuda")
    layout = TokenLayout(keep=None, positions=None, cu_seqlens=cu, max_len=1000, lengths=lengths)
    q = torch.randn(1448, 8, 64, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    k = torch.randn(1448, 2, 64, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    v = torch.randn(1448, 2, 64, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    grad = torch.randn(1448, 8, 64, device="cuda", dtype=torch.bfloat16)
    results = []
    for function in (causal_attention, _reference):
        q.grad = k.grad = v.grad = None
        qq, kk, vv = (t.float() if function is _reference else t for t in (q, k, v))
        out = function(qq, kk, vv, layout, 0.125)
        out.backward(grad.float() if function is _reference else grad)
        results.append([out.detach(), q.grad.clone(), k.grad.clone(), v.grad.clone()])
    for name, fast, ref in zip(["out", "dq", "dk", "dv"], *results, strict=True):
        assert _relative(fast, ref) < 2e-2, (name, _relative(fast, ref))


def test_equal_lengths_and_ce_kernel_match_references():
    from infuse.train.ce_kernel import chunk_loss_and_grad_
    from infuse.train.loss import _chunk_loss_and_grad_
    from infuse.train.varlen_attention import TokenLayout, _reference, causal_attention

    torch.manual_seed(1)
    cu = torch.tensor([0, 512, 1024], dtype=torch.int32, device="cuda")
    layout = TokenLayout(keep=None, positions=None, cu_seqlens=cu, max_len=512, lengths=[512, 512])
    q = torch.randn(1024, 8, 64, device="cuda", dtype=torch.bfloat16)
    k, v = (torch.randn(1024, 2, 64, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    fast = causal_attention(q, k, v, layout, 0.125)
    assert _relative(fast, _reference(q.float(), k.float(), v.float(), layout, 0.125)) < 2e-2
    logits = torch.randn(37, 128256 + 5, device="cuda").mul_(3).to(torch.bfloat16)
    targets = torch.randint(0, logits.shape[1], (37,), device="cuda")
    mine, theirs = logits.clone(), logits.float()
    loss = chunk_loss_and_grad_(mine, targets)
    reference = _chunk_loss_and_grad_(theirs, targets)
    assert abs(float(loss) - float(reference)) / float(reference) < 1e-4, (float(loss), float(reference))
    assert _relative(mine, theirs) < 1e-2, _relative(mine, theirs)


def test_bf16_fast_path_matches_peft():
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    from infuse.train.kernels import apply_fused_kernels

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=1000, hidden_size=256, intermediate_size=512, num_hidden_layers=3,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=64,
                         max_position_embeddings=1024, tie_word_embeddings=True)
    model = LlamaForCausalLM(config).to("cuda", torch.bfloat16)
    model.config.use_cache = False
    model = get_peft_model(model, LoraConfig(
        r=16, lora_alpha=16, init_lora_weights=False,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))
    model.get_base_model().gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    ids = torch.randint(3, 1000, (2, 512), device="cuda")
    mask = torch.ones_like(ids)
    mask[1, 300:] = 0
    targets = torch.cat([ids[:, 1:], torch.full((2, 1), -100, device="cuda")], 1).masked_fill(mask == 0, -100)
    batch = {"input_ids": ids, "targets": targets, "attention_mask": mask}
    runs = []
    for fast in (False, True):
        if fast:
            assert apply_fused_kernels(model)[0].startswith("fast_decoder")
        runs.append(_step(model, batch))
    _assert_matches(runs, "bf16 fast path vs peft")


def test_nf4_fast_path_matches_peft_qlora():
    """QLoRA: 4-bit NF4 frozen weights (double quant, bf16 compute) through infuse's fast path
    (dequantized on use) against peft's own Linear4bit path on the same quantized model."""
    pytest.importorskip("bitsandbytes")
    import tempfile

    from transformers import LlamaConfig, LlamaForCausalLM

    from infuse.train.config import RunConfig
    from infuse.train.kernels import apply_fused_kernels
    from infuse.train.lora_kernels import NF4Weight
    from infuse.train.model import Placement, add_lora, load_base_model

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=1000, hidden_size=256, intermediate_size=512, num_hidden_layers=3,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=64,
                         max_position_embeddings=1024, tie_word_embeddings=False)
    with tempfile.TemporaryDirectory() as folder:
        LlamaForCausalLM(config).to(torch.bfloat16).save_pretrained(folder)
        run = RunConfig(data="-", output="-", lora_r=16, lora_alpha=16, gradient_checkpointing=True,
                        load_in_4bit=True)
        placement = Placement(device="cuda", dtype_name="bf16", backend="hf", fused_kernels=True)
        model = add_lora(run, load_base_model(run, folder, placement))
    from peft.tuners.lora import LoraLayer

    for module in model.modules():  # B random too, so every LoRA weight gets a gradient
        if isinstance(module, LoraLayer):
            torch.nn.init.normal_(module.lora_B["default"].weight, std=0.02)
    model.train()
    ids = torch.randint(3, 1000, (2, 512), device="cuda")
    targets = torch.cat([ids[:, 1:], torch.full((2, 1), -100, device="cuda")], 1)
    batch = {"input_ids": ids, "targets": targets}
    runs = []
    for fast in (False, True):
        if fast:
            assert apply_fused_kernels(model)[0].startswith("fast_decoder")
            from infuse.train.fast_decoder import installed

            assert isinstance(installed(model).layers[0].gate.weight, NF4Weight)
        runs.append(_step(model, batch, reset_peak=True))
    _assert_matches(runs, "nf4 fast path vs peft QLoRA")


if __name__ == "__main__":
    for test in (test_flash_varlen_matches_reference, test_equal_lengths_and_ce_kernel_match_references,
                 test_bf16_fast_path_matches_peft, test_nf4_fast_path_matches_peft_qlora):
        test()
        print("passed", test.__name__, flush=True)
