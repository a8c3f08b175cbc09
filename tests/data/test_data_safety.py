"""`infuse data convert` / `inspect` never replace their input, never hide a missing answer, and refuse
bad sizes and unwritable outputs before any work."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from infuse.cli import main

ROWS = [
    {"instruction": "What is the refund window?", "output": "45 days.", "note": "keep me"},
    {"instruction": "Who founded Acme?", "output": None, "note": "keep me"},
    {"instruction": "Where is Acme?", "output": "", "note": "keep me"},
    {"instruction": "When was Acme founded?", "output": "In 1999.", "note": "keep me"},
]


@pytest.fixture
def data_file(tmp_path) -> Path:
    path = tmp_path / "data" / "train.jsonl"
    path.parent.mkdir()
    path.write_text("".join(json.dumps(row) + "\n" for row in ROWS))
    return path


def run(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and "Traceback" not in err, err
    return lines[0]


def test_convert_onto_its_own_input_is_refused_and_the_input_kept(capsys, data_file, tmp_path):
    before = data_file.read_bytes()
    code, _, err = run(capsys, "data", "convert", data_file, data_file, "--to", "messages")
    assert code == 1 and "is the input file" in error_line(err)
    link = tmp_path / "link.jsonl"
    link.symlink_to(data_file)
    code, _, err = run(capsys, "data", "convert", data_file, link, "--to", "messages")
    assert code == 1 and "is the input file" in error_line(err)
    assert data_file.read_bytes() == before


def test_null_and_empty_answers_are_dropped_with_a_count_never_written_as_none(capsys, data_file, tmp_path):
    out = tmp_path / "out.jsonl"
    code, stdout, _ = run(capsys, "data", "convert", data_file, out, "--to", "messages", "--json")
    assert code == 0
    result = json.loads(stdout)
    assert (result["rows"], result["source_rows"], result["dropped_rows"]) == (2, 4, [1, 2])
    assert "2 of 4 rows have an empty or null answer" in result["warnings"][0]
    written = out.read_text()
    assert "None" not in written and len(written.splitlines()) == 2
    code, _, err = run(capsys, "data", "convert", data_file, tmp_path / "o2.jsonl", "--to", "messages")
    assert code == 0 and "Warning: 2 of 4 rows have an empty or null answer" in err


def test_every_answer_empty_is_refused(capsys, tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("".join(json.dumps({"instruction": f"Q{i}?", "output": None}) + "\n" for i in range(3)))
    code, _, err = run(capsys, "data", "convert", path, tmp_path / "o.jsonl", "--to", "messages")
    assert code == 1 and "every one of the 3 rows has an empty, null or missing answer" in error_line(err)
    assert not (tmp_path / "o.jsonl").exists()


def test_convert_removes_temporary_files_a_killed_convert_left(capsys, data_file, tmp_path):
    out = tmp_path / "out.jsonl"
    stale = tmp_path / ".out.jsonl.k1ll3d00"
    stale.write_bytes(b"x" * 1000)
    an_hour_ago = time.time() - 3600
    os.utime(stale, (an_hour_ago, an_hour_ago))
    fresh = tmp_path / ".out.jsonl.wr1t1ng0"  # another convert may still be writing this one
    fresh.write_bytes(b"y")
    other = tmp_path / ".other.jsonl.k1ll3d00"
    other.write_bytes(b"z")
    os.utime(other, (an_hour_ago, an_hour_ago))
    code, _, _ = run(capsys, "data", "convert", data_file, out, "--to", "messages")
    assert code == 0 and out.exists()
    assert not stale.exists() and fresh.exists() and other.exists()


@pytest.mark.parametrize(("command", "flag", "value"), [
    ("convert", "--conversation-extension", "-3"),
    ("convert", "--conversation-extension", "0"),
    ("inspect", "--conversation-extension", "-3"),
    ("inspect", "--samples", "-1"),
    ("inspect", "--max-seq-len", "0"),
])
def test_negative_and_zero_sizes_are_refused_up_front(capsys, data_file, tmp_path, command, flag, value):
    target = [tmp_path / "o.jsonl", "--to", "messages"] if command == "convert" else []
    code, _, err = run(capsys, "data", command, data_file, *target, flag, value)
    assert code == 2 and flag in err and "Traceback" not in err
    assert not (tmp_path / "o.jsonl").exists()


def test_unwritable_outputs_are_one_line_before_any_work(capsys, data_file, tmp_path, tiny_model_dir):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code, _, err = run(capsys, "data", "convert", data_file, blocker / "out.jsonl", "--to", "messages")
    assert code == 1 and f"Cannot write to {blocker}" in error_line(err)
    code, _, err = run(capsys, "data", "convert", data_file, tmp_path / "out.txt", "--to", "messages")
    assert code == 1 and "unknown output type '.txt'" in error_line(err)
    code, _, err = run(capsys, "data", "inspect", data_file, "--model", tiny_model_dir,
                       "--plot", blocker / "p.png")
    assert code == 1 and f"Cannot write to {blocker}" in error_line(err)


def test_inspect_counts_missing_answers_shows_one_sample_and_plots_beside_the_file(
        capsys, data_file, tiny_model_dir, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, stdout, _ = run(capsys, "data", "inspect", data_file, "--model", tiny_model_dir, "--samples", "1",
                          "--json")
    assert code == 0
    report = json.loads(stdout)
    assert report["empty_answers"] == 2 and len(report["samples"]) == 1
    assert any("2 of 4 rows have no answer (empty, null or missing)" in w for w in report["warnings"])
    beside = data_file.with_name("train.lengths.png")
    assert report["histogram_png"] == str(beside) and beside.read_bytes()[:4] == b"\x89PNG"
    assert list(elsewhere.iterdir()) == []
    code, stdout, _ = run(capsys, "data", "inspect", data_file, "--model", tiny_model_dir, "--samples", "0",
                          "--json")
    assert code == 0 and json.loads(stdout)["samples"] == []


def test_inspect_names_template_tokens_the_vocabulary_lacks(capsys, data_file, tiny_model_dir):
    code, stdout, _ = run(capsys, "data", "inspect", data_file, "--model", tiny_model_dir,
                          "--chat-template", "llama-3.1", "--max-seq-len", "512", "--json")
    assert code == 0
    report = json.loads(stdout)
    assert "<|start_header_id|>" in report["missing_template_tokens"]
    assert any("special tokens the tokenizer does not have" in w for w in report["warnings"])
