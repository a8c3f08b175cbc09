"""On a CUDA GPU (skipped elsewhere): `infuse train` with the Unsloth backend and with QLoRA
4-bit trains, writes the one adapter format, and `infuse generate` reads it back.

Needs unsloth / bitsandbytes installed; each test skips with the reason when one is missing.
"""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch

from infuse.cli import main

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture
def gpu_model_dir(tmp_path):
    """A small Llama with head_dim 64 (what fused GPU kernels expect), saved with a tokenizer."""
    from tiny_models import build_tiny_tokenizer
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_tiny_tokenizer()
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=256, intermediate_size=512,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=512, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    path = tmp_path / "model"
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def _train(capsys, model_dir, qa_file, out, *extra):
    code = main(["train", "--model", str(model_dir), "--data", str(qa_file), "--output", str(out),
                 "--max-steps", "4", "--batch-size", "2", "--grad-accum", "1", "--device", "cuda",
                 "--json", "--quiet", *extra])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out.strip().splitlines()[-1])


@pytest.mark.skipif(importlib.util.find_spec("unsloth") is None, reason="unsloth is not installed")
def test_unsloth_backend_writes_a_peft_adapter_infuse_can_generate_with(capsys, gpu_model_dir, qa_file, tmp_path):
    result = _train(capsys, gpu_model_dir, qa_file, tmp_path / "run", "--backend", "unsloth")
    assert (tmp_path / "run" / "adapter_model.safetensors").exists()
    assert result.get("backend", "unsloth") == "unsloth"
    assert main(["generate", str(tmp_path / "run"), "What is the refund window?", "--max-new-tokens", "4"]) == 0


@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None, reason="bitsandbytes is not installed")
def test_qlora_4bit_trains_and_generates(capsys, gpu_model_dir, qa_file, tmp_path):
    _train(capsys, gpu_model_dir, qa_file, tmp_path / "run", "--load-in-4bit", "--backend", "hf")
    assert (tmp_path / "run" / "adapter_model.safetensors").exists()
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(metrics) == 4 and all(row["loss"] == row["loss"] for row in metrics)  # no NaN
    assert main(["generate", str(tmp_path / "run"), "What is the refund window?", "--max-new-tokens", "4"]) == 0
