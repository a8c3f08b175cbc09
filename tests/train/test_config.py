"""Bad settings fail with a clear ConfigError/DataError before any training starts."""

from __future__ import annotations

import pytest

from infuse.errors import ColumnError, ConfigError, DataError
from infuse.train import RunConfig
from infuse.train.config import config_from_mapping, dump_toml, load_config_file


def _no_training_happened(config: RunConfig) -> None:
    from pathlib import Path

    run = Path(config.output)
    assert not (run / "metrics.jsonl").exists()
    assert not (run / "checkpoints").exists()
    assert not (run / "adapter_model.safetensors").exists()


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"lora_r": 0}, "lora_r=0"),
        ({"lora_r": -4}, "lora_r=-4"),
        ({"lora_dropout": 1.5}, "lora_dropout"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"lr_schedule": "wavy"}, "lr_schedule"),
        ({"batch_size": 0}, "batch_size"),
        ({"eval_split": 1.0}, "eval_split"),
        ({"backend": "tpu"}, "backend"),
    ],
)
def test_invalid_values_name_the_setting(changes, words):
    config = RunConfig(data="d.jsonl", output="out", **changes)
    with pytest.raises(ConfigError, match=words):
        config.validate()


def test_alpha_defaults_to_r():
    assert RunConfig(lora_r=8).alpha == 8
    assert RunConfig(lora_r=8, lora_alpha=32).alpha == 32


def test_toml_round_trip_and_unknown_key(tmp_path):
    config = RunConfig(data="d.jsonl", output="out", lora_r=8, target_modules=["q_proj", "v_proj"])
    path = tmp_path / "config.toml"
    path.write_text(dump_toml(config.to_dict()))
    again = config_from_mapping(load_config_file(path))
    assert again == config
    path.write_text('lora_rank = 8\n')
    with pytest.raises(ConfigError, match="unknown setting 'lora_rank'.*lora_r"):
        config_from_mapping(load_config_file(path), source=str(path))
    path.write_text("lora_r = [\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config_file(path)


def test_unknown_target_module_lists_real_ones(fast_config, qa_file):
    from infuse.train import train

    config = fast_config(qa_file, target_modules=["q_proj", "qkv_proj"])
    with pytest.raises(ConfigError, match="qkv_proj not found.*gate_proj"):
        train(config)
    _no_training_happened(config)


def test_missing_dataset_column(fast_config, tmp_path):
    from infuse.train import train

    data = tmp_path / "cols.jsonl"
    data.write_text('{"question": "Q?", "answer": "A."}\n')
    config = fast_config(data, merged_prompt="{question} {context}", output_column="answer")
    with pytest.raises(ColumnError, match="context"):
        train(config)
    _no_training_happened(config)


def test_prompt_longer_than_max_seq_len(fast_config, tmp_path):
    from infuse.train import train

    data = tmp_path / "long.jsonl"
    data.write_text('{"instruction": "' + "refund window " * 60 + '", "output": "45 days."}\n')
    config = fast_config(data, max_seq_len=32)
    with pytest.raises(ConfigError, match=r"row 0: the prompt is \d+ tokens.*max_seq_len=32.*--max-seq-len"):
        train(config)
    _no_training_happened(config)


def test_everything_masked_is_an_error(fast_config, tmp_path):
    from infuse.train import train

    data = tmp_path / "no_answers.jsonl"
    data.write_text('{"messages": [{"role": "user", "content": "Anyone there?"}]}\n' * 3)
    config = fast_config(data)
    with pytest.raises(DataError, match="every one of the 3 rows has an empty, null or missing answer"):
        train(config)
    _no_training_happened(config)


def test_hardware_checks(fast_config, qa_file):
    from infuse.train import train

    with pytest.raises(ConfigError, match="4-bit|QLoRA"):
        train(fast_config(qa_file, load_in_4bit=True))
    with pytest.raises(ConfigError, match="fp16"):
        train(fast_config(qa_file, dtype="fp16"))


def test_existing_run_needs_resume(fast_config, qa_file):
    from infuse.train import train

    config = fast_config(qa_file, max_steps=1)
    train(config)
    with pytest.raises(ConfigError, match="--resume"):
        train(config)
