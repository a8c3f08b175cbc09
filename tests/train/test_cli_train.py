"""The CLI: flags and TOML become a RunConfig, --json prints one object, errors are one line."""

from __future__ import annotations

import json

from infuse.cli import main


def test_train_generate_export_from_the_command_line(tiny_model_dir, qa_file, tmp_path, capsys):
    run = tmp_path / "run"
    config = tmp_path / "settings.toml"
    config.write_text("[train]\nlora_r = 4\nbatch_size = 2\ngrad_accum = 1\nwarmup_steps = 0\n"
                      "gradient_checkpointing = false\nmax_seq_len = 128\n")
    code = main(["train", "--model", str(tiny_model_dir), "--data", str(qa_file), "--output", str(run),
                 "--config", str(config), "--max-steps", "2", "--lora-r", "8", "--device", "cpu", "--json"])
    assert code == 0
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert payload["steps"] == 2 and payload["device"] == "cpu"
    saved = (run / "config.toml").read_text()
    assert "lora_r = 8" in saved and "batch_size = 2" in saved  # flag beats file, file beats default

    assert main(["generate", str(run), "Refund window for item 3?", "--max-new-tokens", "3", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert answer["completion_tokens"] <= 3

    assert main(["export", str(run), "--format", "adapter", "--output", str(tmp_path / "out"), "--json"]) == 0
    exported = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert "adapter_model.safetensors" in exported["files"]

    # resume with only --output continues from the saved settings
    assert main(["train", "--output", str(run), "--resume", "--max-steps", "3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["steps"] == 3


def test_bad_flag_is_one_clear_line(tiny_model_dir, qa_file, tmp_path, capsys):
    code = main(["train", "--model", str(tiny_model_dir), "--data", str(qa_file),
                 "--output", str(tmp_path / "run"), "--lora-r", "0"])
    assert code == 1
    error = capsys.readouterr().err
    assert error.startswith("Error: Invalid training settings: lora_r=0") and "Traceback" not in error
    assert not (tmp_path / "run").exists()
