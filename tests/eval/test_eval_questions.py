"""Question files: the accepted row shapes, filters, and errors that name the file and line."""

from __future__ import annotations

import json

import pytest

from infuse.errors import DataError
from infuse.eval.questions import load_questions


def _write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_three_row_shapes(tmp_path):
    path = _write(tmp_path / "qa.jsonl", [
        {"id": "x", "question": "Q1?", "answer": 38, "aliases": ["38 days"], "source": "a.md", "tags": ["cpu"]},
        {"instruction": "Q2?", "input": "context", "output": "A2"},
        {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "Q3?"},
                      {"role": "assistant", "content": "A3"}]},
        "",
    ])
    first, second, third = load_questions(path)
    assert (first.id, first.answer, first.references, first.source) == ("x", "38", ["38", "38 days"], "a.md")
    assert second.question == "Q2?\n\ncontext" and second.answer == "A2" and second.id == "q002"
    assert (third.question, third.answer) == ("Q3?", "A3")
    assert [q.id for q in load_questions(path, tag="cpu")] == ["x"]
    assert len(load_questions(path, limit=2)) == 2


def test_json_list_file(tmp_path):
    path = tmp_path / "qa.json"
    path.write_text(json.dumps([{"question": "Q?", "answer": "A"}]))
    assert load_questions(path)[0].answer == "A"


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (['{"question": "Q?", "answer": "A"}', "{not json"], r"qa.jsonl, line 2: invalid JSON"),
        ([{"question": "Q?", "answer": ""}], r"line 1: the reference answer is empty"),
        ([{"text": "hello"}], r"line 1: no question found.*\['text'\]"),
        ([{"id": "a", "question": "Q?", "answer": "A"}, {"id": "a", "question": "Q2?", "answer": "B"}],
         r"line 2: id 'a' is used again \(first at .*line 1\)"),
        ([{"messages": [{"role": "user", "content": "Q?"}]}], r"needs a user turn followed by an assistant"),
        ([{"question": "Q?", "answer": "A", "aliases": "x"}], r"'aliases' and 'tags' must be lists"),
        ([], r"no questions to evaluate"),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path, rows, message):
    path = _write(tmp_path / "qa.jsonl", rows)
    with pytest.raises(DataError, match=message):
        load_questions(path)


def test_empty_subset_and_missing_file(tmp_path):
    path = _write(tmp_path / "qa.jsonl", [{"question": "Q?", "answer": "A"}])
    with pytest.raises(DataError, match="no questions tagged 'gpu'"):
        load_questions(path, tag="gpu")
    with pytest.raises(DataError, match="does not exist"):
        load_questions(tmp_path / "nope.jsonl")
