"""Every export loads back and gives the merged model's logits; chat refuses a foreign template."""

from __future__ import annotations

import json

import pytest
import torch

from infuse.errors import ConfigError, TemplateError


@pytest.fixture(scope="module")
def trained_run(tiny_model_dir, tmp_path_factory):
    """One short run on the tiny model, shared by the export tests."""
    from infuse.train import RunConfig, train

    folder = tmp_path_factory.mktemp("export")
    data = folder / "qa.jsonl"
    rows = [{"instruction": f"Refund window for item {i}?", "output": f"{40 + i} days."} for i in range(4)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    torch.set_num_threads(1)
    config = RunConfig(model=str(tiny_model_dir), data=str(data), output=str(folder / "run"), max_steps=5,
                       batch_size=2, grad_accum=1, learning_rate=2e-2, warmup_steps=0,
                       gradient_checkpointing=False, max_seq_len=128, device="cpu")
    return train(config).run_dir


@pytest.fixture(scope="module")
def merged_reference(trained_run):
    from infuse.train.export import merged_model

    model, tokenizer = merged_model(trained_run, dtype="fp32")
    ids = torch.tensor([tokenizer("<|im_start|>user\nRefund window for item 2?<|im_end|>\n")["input_ids"]])
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    return ids, logits


def _relative_error(ours, reference) -> float:
    return float((ours.float() - reference).norm() / reference.norm())


def test_adapter_export_is_a_peft_folder(trained_run, merged_reference, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from infuse.train import export_run
    from infuse.train.runs import read_run_config

    result = export_run(trained_run, tmp_path / "adapter", format="adapter")
    assert {"adapter_model.safetensors", "adapter_config.json", "chat_template.jinja"} <= set(result.files)
    base = AutoModelForCausalLM.from_pretrained(read_run_config(trained_run).model, local_files_only=True)
    model = PeftModel.from_pretrained(base, str(result.path)).eval()
    ids, reference = merged_reference
    with torch.no_grad():
        assert _relative_error(model(input_ids=ids).logits, reference) < 1e-5
    # the adapter changed the model: base logits differ
    with torch.no_grad(), model.disable_adapter():
        assert _relative_error(model(input_ids=ids).logits, reference) > 1e-3


def test_merged_export_round_trips(trained_run, merged_reference, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from infuse.train import export_run

    for dtype, tolerance in (("fp32", 1e-5), ("bf16", 2e-2)):
        result = export_run(trained_run, tmp_path / dtype, format="merged", dtype=dtype)
        assert "model.safetensors" in result.files
        model = AutoModelForCausalLM.from_pretrained(result.path, local_files_only=True).eval()
        ids, reference = merged_reference
        with torch.no_grad():
            assert _relative_error(model(input_ids=ids).logits, reference) < tolerance
    tokenizer = AutoTokenizer.from_pretrained(result.path)
    assert tokenizer.chat_template == (trained_run / "chat_template.jinja").read_text()


@pytest.mark.parametrize(("quant", "tolerance"), [("f16", 5e-3), ("q8_0", 3e-2)])
def test_gguf_export_round_trips(trained_run, merged_reference, tmp_path, quant, tolerance):
    from gguf import GGUFReader
    from transformers import AutoModelForCausalLM

    from infuse.train import export_run

    result = export_run(trained_run, tmp_path / quant, format="gguf", quant=quant)
    gguf_name = next(name for name in result.files if name.endswith(f".{quant}.gguf"))
    reader = GGUFReader(str(result.path / gguf_name))
    field = reader.fields["tokenizer.chat_template"]
    assert bytes(field.parts[field.data[0]]).decode() == (trained_run / "chat_template.jinja").read_text()
    types = {t.name: t.tensor_type.name for t in reader.tensors}
    assert types["blk.0.attn_q.weight"] == quant.upper() and types["output_norm.weight"] == "F32"

    model = AutoModelForCausalLM.from_pretrained(result.path, gguf_file=gguf_name, dtype=torch.float32,
                                                 local_files_only=True).eval()
    ids, reference = merged_reference
    with torch.no_grad():
        error = _relative_error(model(input_ids=ids).logits, reference)
    assert error < tolerance, error

    modelfile = (result.path / "Modelfile").read_text()
    assert modelfile.startswith(f"FROM ./{gguf_name}")
    assert "<|im_start|>{{ .Role }}" in modelfile and 'PARAMETER stop "<|im_end|>"' in modelfile


def test_export_refuses_bad_requests(trained_run, tmp_path):
    from infuse.errors import ModelNotFoundError
    from infuse.train import export_run

    with pytest.raises(ConfigError, match="q3"):
        export_run(trained_run, tmp_path / "x", format="gguf", quant="q3")
    with pytest.raises(ConfigError, match="format"):
        export_run(trained_run, tmp_path / "y", format="onnx")
    with pytest.raises(ModelNotFoundError, match="not a finished infuse run"):
        export_run(tmp_path, tmp_path / "z")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "file").write_text("x")
    with pytest.raises(ConfigError, match="not empty"):
        export_run(trained_run, tmp_path / "full")


def test_chat_uses_the_runs_template_and_refuses_another(trained_run):
    from infuse.train import generate_from_run
    from infuse.train.runs import load_run_model

    chat_model = load_run_model(trained_run)
    assert chat_model.tokenizer.chat_template == (trained_run / "chat_template.jinja").read_text()
    answer = generate_from_run(trained_run, "Refund window for item 1?", max_new_tokens=4, chat_model=chat_model)
    assert answer.completion_tokens and answer.completion_tokens <= 4
    with pytest.raises(TemplateError, match="llama-3.*Drop --chat-template"):
        generate_from_run(trained_run, "hi", chat_template="llama-3")
