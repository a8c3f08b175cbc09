"""`infuse train` and the commands that read a run never lose the user's files or hide damage."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_run_record import train_flags

from infuse.cli import main

REPO = Path(__file__).resolve().parents[2]


def run_cli(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line_error(err: str) -> str:
    """The error line; asserts there is exactly one and no traceback."""
    lines = [line for line in err.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def finished_run(tiny_model_dir, qa_file, tmp_path, capsys):
    """A 4-step run with checkpoints at steps 2 and 4."""
    run = tmp_path / "run"
    assert main(train_flags(tiny_model_dir, qa_file, run, "--save-every", "2", "--quiet")) == 0
    capsys.readouterr()
    return run


# --- the user's own folder -------------------------------------------------------------------

def test_train_refuses_a_foreign_folder_and_keeps_its_files(tiny_model_dir, qa_file, tmp_path, capsys):
    mine = tmp_path / "notes"
    mine.mkdir()
    (mine / "README.md").write_text("my notes\n")
    (mine / "config.toml").write_text("hand = 'written'\n")
    code, _, err = run_cli(capsys, *train_flags(tiny_model_dir, qa_file, mine, "--quiet"))
    line = one_line_error(err)
    assert code == 1 and "is not empty (README.md, config.toml)" in line and "--force" in line
    assert sorted(p.name for p in mine.iterdir()) == ["README.md", "config.toml"]
    assert (mine / "README.md").read_text() == "my notes\n"

    code, _, _ = run_cli(capsys, *train_flags(tiny_model_dir, qa_file, mine, "--quiet", "--force"))
    assert code == 0 and (mine / "adapter_model.safetensors").exists()


def test_output_that_is_a_file_or_unwritable_is_refused_before_work(tiny_model_dir, qa_file, tmp_path, capsys):
    a_file = tmp_path / "plain.txt"
    a_file.write_text("x")
    code, _, err = run_cli(capsys, *train_flags(tiny_model_dir, qa_file, a_file, "--quiet"))
    assert code == 1 and "is a file, not a folder" in one_line_error(err)
    code, _, err = run_cli(capsys, *train_flags(tiny_model_dir, qa_file, a_file / "run", "--quiet"))
    assert code == 1 and f"Cannot write to {a_file / 'run'}" in one_line_error(err)


def test_two_trainings_into_one_folder_the_second_fails_by_name(tiny_model_dir, qa_file, tmp_path):
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "infuse", *train_flags(tiny_model_dir, qa_file, run, "--quiet")]
    command[command.index("--max-steps") + 1] = "100000"  # still training when the second one starts
    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 180
        while not (run / "metrics.jsonl").exists():  # the first is training (and holds the lock)
            assert first.poll() is None and time.time() < deadline, first.communicate()
            time.sleep(0.2)
        second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        assert first.poll() is None, first.communicate()
    finally:
        first.terminate()
        first.communicate(timeout=60)
    assert second.returncode == 1
    assert "is in use by another process (lock" in one_line_error(second.stderr)
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, len(steps) + 1))  # one run's log, not two interleaved


# --- resume and damaged checkpoints ----------------------------------------------------------

def test_resume_of_a_finished_run_says_so(finished_run, tiny_model_dir, qa_file, capsys):
    code, _, err = run_cli(capsys, *train_flags(tiny_model_dir, qa_file, finished_run, "--resume", "--quiet"))
    assert code == 1 and "is a finished run (4 of 4 steps): there is nothing to resume" in one_line_error(err)


def test_truncated_checkpoint_adapter_falls_back_to_the_previous_one(finished_run, tiny_model_dir, qa_file,
                                                                     capsys):
    adapter = finished_run / "checkpoints" / "step-4" / "adapter_model.safetensors"
    adapter.write_bytes(adapter.read_bytes()[:100])
    flags = train_flags(tiny_model_dir, qa_file, finished_run, "--resume", "--json")
    flags[flags.index("--max-steps") + 1] = "6"
    code, out, err = run_cli(capsys, *flags)
    assert code == 0, err
    result = json.loads(out)
    assert result["steps"] == 6
    assert any("step-4" in w and "damaged" in w and "earlier one" in w for w in result["warnings"])
    steps = [json.loads(line)["step"] for line in (finished_run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]  # continued from step 2: its log past step 2 was replaced


@pytest.mark.parametrize(("name", "damage"), [
    ("optimizer.pt", b"garbage, not a torch file"),
    ("trainer_state.json", b"{not json"),
    ("rng.pt", b""),
])
def test_damaged_checkpoint_file_is_one_line_naming_it(finished_run, tiny_model_dir, qa_file, capsys,
                                                        name, damage):
    (finished_run / "checkpoints" / "step-4" / name).write_bytes(damage)
    flags = train_flags(tiny_model_dir, qa_file, finished_run, "--resume", "--quiet")
    flags[flags.index("--max-steps") + 1] = "6"
    code, _, err = run_cli(capsys, *flags)
    line = one_line_error(err)
    assert code == 1 and f"step-4/{name}" in line and "checkpoint is damaged" in line


@pytest.mark.parametrize("damage", ["delete", "truncate"])
def test_run_with_a_lost_adapter_is_one_line_in_every_reader(finished_run, tmp_path, capsys, damage):
    adapter = finished_run / "adapter_model.safetensors"
    if damage == "delete":
        adapter.unlink()
    else:
        adapter.write_bytes(adapter.read_bytes()[:-10])
    expected = "is missing" if damage == "delete" else "is damaged (truncated"
    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({"question": "Refund window?", "answer": "45 days"}) + "\n")
    commands = [
        ["generate", finished_run, "Refund window?"],
        ["chat", finished_run],
        ["export", finished_run, "--output", tmp_path / "exported"],
        ["eval", "--questions", questions, "--methods", "lora", "--run", finished_run,
         "--output", tmp_path / "report"],
    ]
    for command in commands:
        code, _, err = run_cli(capsys, *command)
        line = one_line_error(err)
        assert code == 1 and "adapter_model.safetensors" in line and expected in line, (command, line)
    assert not (tmp_path / "exported").exists()


# --- what is trained on ------------------------------------------------------------------------

def test_null_answers_are_left_out_with_a_count_never_trained_as_none(tiny_model_dir, tmp_path, capsys):
    rows = [{"instruction": f"Question {i}?", "output": None if i % 3 == 0 else f"Answer {i}."}
            for i in range(9)]
    data = tmp_path / "nulls.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, out, _ = run_cli(capsys, *train_flags(tiny_model_dir, data, tmp_path / "run", "--json"))
    assert code == 0
    result = json.loads(out)
    assert result["dropped_examples"] == 3 and result["train_examples"] == 6
    assert any("3 of 9 rows have an empty or null answer" in w for w in result["warnings"])

    from infuse.train.examples import build_token_data
    from infuse.train.model import load_tokenizer_for
    from infuse.train.runs import RunRecord

    record = RunRecord.read(tmp_path / "run")
    tokenizer = load_tokenizer_for(str(tiny_model_dir))
    trained = build_token_data(record.config, tokenizer).train
    texts = [tokenizer.decode([t for t in e.targets if t != -100]) for e in trained]
    assert len(texts) == 6 and not any("None" in text for text in texts)


def test_every_answer_empty_is_refused(tiny_model_dir, tmp_path, capsys):
    data = tmp_path / "empty.jsonl"
    data.write_text("".join(json.dumps({"instruction": f"Q{i}?", "output": ["", None][i % 2]}) + "\n"
                            for i in range(4)))
    code, _, err = run_cli(capsys, *train_flags(tiny_model_dir, data, tmp_path / "run", "--quiet"))
    assert code == 1 and "every one of the 4 rows has an empty, null or missing answer" in one_line_error(err)


def test_template_with_tokens_the_vocabulary_lacks_is_named(tiny_model_dir, qa_file, tmp_path, capsys):
    flags = train_flags(tiny_model_dir, qa_file, tmp_path / "run", "--chat-template", "llama-3.1", "--json")
    flags[flags.index("--max-seq-len") + 1] = "512"  # llama-3.1 adds a dated system turn
    code, out, _ = run_cli(capsys, *flags)
    assert code == 0
    warning = [w for w in json.loads(out)["warnings"] if "special tokens the tokenizer does not have" in w]
    assert warning and "<|start_header_id|>" in warning[0] and "<|eot_id|>" in warning[0]
    code, out, _ = run_cli(capsys, *train_flags(tiny_model_dir, qa_file, tmp_path / "run2", "--json"))
    assert not [w for w in json.loads(out)["warnings"] if "special tokens" in w]  # chatml fits


def test_negative_and_zero_sizes_are_refused_up_front(tiny_model_dir, qa_file, tmp_path, capsys):
    for flag, value in (("--conversation-extension", "-3"), ("--batch-size", "0"), ("--max-seq-len", "-1"),
                        ("--lora-r", "0")):
        code, _, err = run_cli(capsys, *train_flags(tiny_model_dir, qa_file, tmp_path / "run", flag, value))
        assert code == 1 and flag.lstrip("-").replace("-", "_") in one_line_error(err), (flag, err)
    assert not (tmp_path / "run").exists()


def test_export_to_an_unwritable_place_is_one_line_before_work(finished_run, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    code, _, err = run_cli(capsys, "export", finished_run, "--format", "merged", "--output", blocker / "out")
    assert code == 1 and f"Cannot write to {blocker}" in one_line_error(err)


def test_cli_draws_progress_and_warnings_on_stderr_only(tiny_model_dir, qa_file, tmp_path, capsys):
    rows = [json.loads(line) for line in qa_file.read_text().splitlines()]
    rows[0]["output"] = None
    data = tmp_path / "one_null.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, out, err = run_cli(capsys, *train_flags(tiny_model_dir, data, tmp_path / "run"))
    assert code == 0
    assert "train: 4/4 done in" in err and "(loss " in err  # plain lines when stderr is not a terminal
    assert "Warning: 1 of 8 rows have an empty or null answer" in err
    assert "Trained 4 steps" in out and "Warning" not in out


def test_resume_with_nothing_to_resume(tiny_model_dir, qa_file, tmp_path, capsys):
    missing = tmp_path / "typo"
    code, _, err = run_cli(capsys, *train_flags(tiny_model_dir, qa_file, missing, "--resume", "--quiet"))
    assert code == 1 and "holds no run to continue" in one_line_error(err)
    assert not (missing / "adapter_model.safetensors").exists()
