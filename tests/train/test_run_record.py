"""The run record: `infuse train` writes it, `infuse eval` reads it, the diagnoses fire from it."""

from __future__ import annotations

import json

import pytest

from infuse.cli import main
from infuse.errors import ConfigError
from infuse.train.config import RunConfig
from infuse.train.runs import RunRecord, resolve_run_config

QUESTIONS = [
    {"id": f"q{i}", "question": f"What is the refund window for item {i}?", "answer": f"{40 + i} days"}
    for i in range(3)
]


def train_flags(model_dir, data, output, *extra: str) -> list[str]:
    return ["train", "--model", str(model_dir), "--data", str(data), "--output", str(output),
            "--max-steps", "4", "--batch-size", "2", "--grad-accum", "1", "--warmup-steps", "0",
            "--learning-rate", "1e-2", "--no-gradient-checkpointing", "--max-seq-len", "128",
            "--device", "cpu", *extra]


def test_train_then_eval_diagnoses_too_little_data_from_the_record(tiny_model_dir, qa_file, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(train_flags(tiny_model_dir, qa_file, run, "--json")) == 0
    trained = json.loads(capsys.readouterr().out)
    assert trained["steps"] == 4 and trained["train_examples"] == 8

    record = RunRecord.read(run)
    assert record.status == "finished" and record.steps == 4 and record.total_steps == 4
    assert record.train_examples == 8 and record.dropped_examples == 0
    assert record.model_parameters > 0 and 0 < record.trainable_parameters < record.model_parameters
    assert 0 < record.supervised_token_fraction < 1
    assert record.training_s > 0 and record.final_loss == trained["final_loss"]
    assert record.config.max_steps == 4 and "<|im_start|>" in record.chat_template
    assert [row["step"] for row in record.metrics] == [1, 2, 3, 4]

    questions = tmp_path / "questions.jsonl"
    questions.write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS), encoding="utf-8")
    code = main(["eval", "--questions", str(questions), "--methods", "lora", "--run", str(run),
                 "--max-new-tokens", "4", "--output", str(tmp_path / "report"), "--json"])
    assert code == 0
    payload = json.loads(capsys.readouterr().out)
    findings = {f["code"]: f for f in payload["findings"]}
    assert "too_little_data" in findings, payload["findings"]
    signal = findings["too_little_data"]["signal"]
    assert signal["train_examples"] == 8 and signal["model_parameters"] == record.model_parameters
    assert "8 examples" in findings["too_little_data"]["message"]


def test_record_round_trips_and_to_dict(tmp_path):
    record = RunRecord(config=RunConfig(data="d.jsonl", output=str(tmp_path), lora_r=4), train_examples=12,
                       warnings=["look out"], chat_template="{{ x }}")
    record.write(tmp_path)
    back = RunRecord.read(tmp_path)
    assert back.config == record.config and back.train_examples == 12 and back.warnings == ["look out"]
    assert back.chat_template == "{{ x }}" and back.status == "running" and back.started
    payload = back.to_dict()
    assert payload["config"]["lora_r"] == 4 and payload["run_dir"] == str(tmp_path)
    assert json.loads(json.dumps(payload)) == payload
    assert "config" not in json.loads((tmp_path / "run.json").read_text())  # settings live in config.toml


def test_resume_layers_the_runs_own_settings_under_the_flags(tmp_path):
    RunRecord(config=RunConfig(data="d.jsonl", output=str(tmp_path), lora_r=4, max_steps=10)).write(tmp_path)
    file = tmp_path / "more.toml"
    file.write_text("max_steps = 20\nlearning_rate = 0.001\n", encoding="utf-8")
    config = resolve_run_config({"output": str(tmp_path), "learning_rate": 0.005, "seed": None},
                                config_file=file, resume=True)
    assert (config.lora_r, config.max_steps, config.learning_rate, config.data) == (4, 20, 0.005, "d.jsonl")
    fresh = resolve_run_config({"output": str(tmp_path), "data": "e.jsonl"}, resume=False)
    assert fresh.lora_r == 16  # without --resume the old run's settings are not used
    with pytest.raises(ConfigError, match="unknown setting 'lora_rank'"):
        resolve_run_config({"output": "o", "data": "d", "lora_rank": 3})


def test_library_reports_progress_through_the_callback_and_prints_nothing(fast_config, qa_file, capfd):
    from infuse.train import train

    calls = []
    result = train(fast_config(qa_file, max_steps=3),
                   on_progress=lambda done, total, **info: calls.append((done, total, info)))
    out, err = capfd.readouterr()
    assert out == "" and "train" not in err
    steps = [(done, total) for done, total, info in calls if "loss" in info]
    assert steps == [(1, 3), (2, 3), (3, 3)]
    assert calls[0][:2] == (0, 3)  # the start, before the first step
    assert result.record.status == "finished"


def test_run_record_counts_unlabelled_rows_and_long_prompts_do_not_read_as_masked(
        tiny_model_dir, tmp_path, capsys):
    """Long prompts with short answers (RAFT-like rows) label few tokens; the record says how
    many rows carried no label (none here), and eval does not call that a masking fault."""
    rows = [{"instruction": f"Item {i}: " + "background words " * 30 + "What is it?", "output": "A."}
            for i in range(6)]
    data = tmp_path / "long_prompts.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    flags = train_flags(tiny_model_dir, data, tmp_path / "run", "--json")
    flags[flags.index("--max-seq-len") + 1] = "1024"
    assert main(flags) == 0
    capsys.readouterr()
    record = RunRecord.read(tmp_path / "run")
    assert 0 < record.supervised_token_fraction < 0.05
    assert record.unlabelled_examples == 0 and record.train_examples >= 5
    questions = tmp_path / "questions.jsonl"
    questions.write_text(json.dumps({"question": "What is item 1?", "answer": "A thing"}) + "\n")
    code = main(["eval", "--questions", str(questions), "--methods", "lora", "--run", str(tmp_path / "run"),
                 "--max-new-tokens", "4", "--output", str(tmp_path / "report"), "--json"])
    assert code == 0
    findings = {f["code"] for f in json.loads(capsys.readouterr().out)["findings"]}
    assert "labels_masked" not in findings


@pytest.mark.parametrize(("text", "expected"), [
    ("{not json", "run.json: not valid JSON"),
    ("[1, 2]", "run.json: expected a JSON object"),
    ('{"train_examples": "many"}', "run.json: 'train_examples' should be int | None, got 'many'"),
])
def test_damaged_record_is_a_named_error(tmp_path, text, expected):
    from infuse.errors import DataError

    RunRecord(config=RunConfig()).write(tmp_path)
    (tmp_path / "run.json").write_text(text)
    with pytest.raises(DataError, match=expected.replace("|", r"\|").replace("[", r"\[")):
        RunRecord.read(tmp_path)


def test_not_a_run_and_lost_settings_are_named(tmp_path):
    from infuse.errors import DataError, ModelNotFoundError

    with pytest.raises(ModelNotFoundError, match="does not exist"):
        RunRecord.read(tmp_path / "nowhere")
    with pytest.raises(ModelNotFoundError, match="is not an infuse run"):
        RunRecord.read(tmp_path)
    RunRecord(config=RunConfig()).write(tmp_path)
    (tmp_path / "config.toml").unlink()
    with pytest.raises(DataError, match="config.toml is missing"):
        RunRecord.read(tmp_path)
