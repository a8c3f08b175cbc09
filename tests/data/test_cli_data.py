"""`infuse data convert` / `inspect` from the command line: outputs, JSON, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infuse.cli import main

ROWS = [
    {"instruction": "What is the refund window?", "input": "", "output": "45 days."},
    {"instruction": "Who founded Acme?", "input": "Answer with a name.", "output": "Ada Wren."},
]


@pytest.fixture
def alpaca_file(tmp_path) -> Path:
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in ROWS))
    return path


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("target,suffix", [("messages", ".jsonl"), ("openai-jsonl", ".jsonl"),
                                            ("sharegpt", ".json"), ("alpaca", ".csv")])
def test_convert_round_trips_through_every_format(capsys, tmp_path, alpaca_file, target, suffix):
    out = tmp_path / f"out{suffix}"
    code, stdout, _ = run(capsys, "data", "convert", str(alpaca_file), str(out), "--to", target, "--json")
    assert code == 0 and json.loads(stdout)["rows"] == 2
    back = tmp_path / "back.jsonl"
    code, _, _ = run(capsys, "data", "convert", str(out), str(back), "--to", "messages")
    assert code == 0
    first = json.loads(back.read_text().splitlines()[0])["messages"]
    assert first == [{"role": "user", "content": "What is the refund window?"},
                     {"role": "assistant", "content": "45 days."}]


def test_openai_jsonl_rows_are_chat_messages(capsys, tmp_path, alpaca_file):
    out = tmp_path / "openai.jsonl"
    run(capsys, "data", "convert", str(alpaca_file), str(out), "--to", "openai-jsonl",
        "--system-prompt", "You are Acme's assistant.")
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert set(rows[0]) == {"messages"}
    assert [turn["role"] for turn in rows[1]["messages"]] == ["system", "user", "assistant"]
    assert rows[1]["messages"][1]["content"] == "Who founded Acme?\n\nAnswer with a name."


def test_multi_turn_to_alpaca_is_refused_and_nothing_is_written(capsys, tmp_path, alpaca_file):
    out = tmp_path / "alpaca.jsonl"
    code, _, err = run(capsys, "data", "convert", str(alpaca_file), str(out), "--to", "alpaca",
                       "--conversation-extension", "2")
    assert code == 1
    assert err.startswith("Error: Row 0: Alpaca holds one instruction") and err.count("\n") == 1
    assert not out.exists() and not list(tmp_path.glob(".alpaca.jsonl.*"))


def test_failed_convert_keeps_the_previous_output(capsys, tmp_path, alpaca_file):
    out = tmp_path / "out.jsonl"
    out.write_text("precious\n")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "a", "output": "b"}\n{oops}\n')
    code, _, err = run(capsys, "data", "convert", str(bad), str(out), "--to", "messages")
    assert code == 1 and "bad.jsonl, line 2" in err
    assert out.read_text() == "precious\n"


def test_unknown_column_in_merged_prompt_is_one_line(capsys, tmp_path, alpaca_file):
    code, _, err = run(capsys, "data", "convert", str(alpaca_file), str(tmp_path / "o.jsonl"),
                       "--to", "messages", "--merged-prompt", "{question}")
    assert code == 1
    assert "'{question}'" in err and "instruction, input, output" in err


def test_inspect_reports_lengths_warnings_samples_and_plot(capsys, tmp_path, tiny_model_dir):
    rows = ROWS + [ROWS[0], {"instruction": "Long one", "input": "word " * 300, "output": ""}]
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    plot = tmp_path / "lengths.png"
    code, stdout, _ = run(capsys, "data", "inspect", str(path), "--model", str(tiny_model_dir),
                          "--max-seq-len", "64", "--plot", str(plot), "--json")
    assert code == 0
    report = json.loads(stdout)
    assert report["rows"] == 4 and report["format"] == "alpaca"
    assert report["roles"] == {"user": 4, "assistant": 4}
    assert report["duplicates"] == 1 and report["empty_answers"] == 1
    assert report["over_max_len"] == 1 and report["fully_masked"] >= 1
    assert report["token_percentiles"]["max"] > 64
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    trained = "".join(seg["text"] for seg in report["samples"][0] if seg["trained"])
    assert trained.startswith("45 days.")
    warnings = " ".join(report["warnings"])
    assert "longer than max_seq_len 64" in warnings and "duplicates" in warnings
    assert "have no answer (empty, null or missing)" in warnings


def test_inspect_human_output_marks_trained_part(capsys, alpaca_file, tiny_model_dir, tmp_path):
    code, stdout, _ = run(capsys, "data", "inspect", str(alpaca_file), "--model", str(tiny_model_dir),
                          "--plot", str(tmp_path / "p.png"))
    assert code == 0
    text = " ".join(stdout.split())  # rich wraps lines to the terminal width
    assert "2 rows, detected format alpaca" in text
    assert "sample 1" in text and "Only 2 rows" in text


def test_merged_prompt_escapes_typed_on_the_command_line(capsys, tmp_path, alpaca_file):
    out = tmp_path / "m.jsonl"
    code, _, _ = run(capsys, "data", "convert", str(alpaca_file), str(out), "--to", "messages",
                     "--merged-prompt", "{instruction}[[\\n\\nInput: {input}]]")
    assert code == 0
    second = json.loads(out.read_text().splitlines()[1])["messages"][0]["content"]
    assert second == "Who founded Acme?\n\nInput: Answer with a name."
