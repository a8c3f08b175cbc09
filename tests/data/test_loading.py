"""Loading every file type, detecting the format, and clear errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from datasets import Dataset, DatasetDict

from infuse.data.loading import load_dataset_file, to_conversations
from infuse.errors import ColumnError, DataError

ALPACA = [
    {"instruction": "Add the numbers", "input": "1 and 2", "output": "3"},
    {"instruction": "Say hi", "input": "", "output": "Hi!"},
]
SHAREGPT = [{"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]}]
MESSAGES = [{"messages": [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hi"},
                          {"role": "assistant", "content": "Hello"}]}]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_jsonl_alpaca_detected_and_converted(tmp_path):
    loaded = load_dataset_file(write_jsonl(tmp_path / "a.jsonl", ALPACA))
    assert loaded.format == "alpaca" and loaded.dataset.num_rows == 2
    conversations = to_conversations(loaded)["conversations"]
    assert conversations[0] == [{"role": "user", "content": "Add the numbers\n\n1 and 2"},
                                {"role": "assistant", "content": "3"}]
    assert conversations[1][0]["content"] == "Say hi"


def test_json_array_sharegpt_and_messages(tmp_path):
    (tmp_path / "s.json").write_text(json.dumps(SHAREGPT))
    loaded = load_dataset_file(tmp_path / "s.json")
    assert loaded.format == "sharegpt"
    assert to_conversations(loaded)["conversations"][0][1] == {"role": "assistant", "content": "Hello"}
    (tmp_path / "m.json").write_text(json.dumps({"data": MESSAGES}))
    loaded = load_dataset_file(tmp_path / "m.json")
    assert loaded.format == "messages"
    assert to_conversations(loaded)["conversations"][0] == MESSAGES[0]["messages"]


def test_csv_free_form_columns_need_a_merged_prompt(tmp_path):
    path = tmp_path / "faq.csv"
    path.write_text('topic,question,answer\nbilling,"How do I pay,\nreally?",By card\nshipping,,In 3 days\n')
    loaded = load_dataset_file(path)
    assert loaded.format == "columns" and loaded.columns == ["topic", "question", "answer"]
    with pytest.raises(ColumnError, match="--merged-prompt"):
        to_conversations(loaded)
    conversations = to_conversations(
        loaded, merged_prompt="[{topic}] [[{question}]]", output_column="answer"
    )["conversations"]
    assert conversations[0][0]["content"] == "[billing] How do I pay,\nreally?"
    assert conversations[1][0]["content"] == "[shipping] "  # empty cell drops the block
    assert conversations[1][1]["content"] == "In 3 days"


def test_parquet_and_saved_dataset(tmp_path):
    Dataset.from_list(ALPACA).to_parquet(str(tmp_path / "a.parquet"))
    assert load_dataset_file(tmp_path / "a.parquet").format == "alpaca"
    DatasetDict({"train": Dataset.from_list(MESSAGES)}).save_to_disk(str(tmp_path / "saved"))
    loaded = load_dataset_file(tmp_path / "saved")
    assert loaded.format == "messages" and loaded.dataset.num_rows == 1


def test_system_prompt_and_extension(tmp_path):
    loaded = load_dataset_file(write_jsonl(tmp_path / "a.jsonl", ALPACA * 3))
    conversations = to_conversations(loaded, system_prompt="Be exact.", conversation_extension=2)
    first = conversations["conversations"][0]
    assert first[0] == {"role": "system", "content": "Be exact."}
    assert [turn["role"] for turn in first[1:]] == ["user", "assistant", "user", "assistant"]


def test_malformed_jsonl_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"instruction": "a", "output": "b"}\n{"instruction": "c", "output": \n')
    with pytest.raises(DataError, match=r"bad\.jsonl, line 2: invalid JSON"):
        load_dataset_file(path)


def test_non_object_line_wrong_types_and_empty(tmp_path):
    path = tmp_path / "list.jsonl"
    path.write_text('["not", "an", "object"]\n')
    with pytest.raises(DataError, match="line 1: expected a JSON object"):
        load_dataset_file(path)
    path = tmp_path / "types.jsonl"
    path.write_text('{"instruction": "a", "output": "b"}\n{"instruction": {"x": 1}, "output": "b"}\n')
    with pytest.raises(DataError, match="types.jsonl: rows do not share one shape"):
        load_dataset_file(path)
    path = tmp_path / "empty.jsonl"
    path.write_text("\n\n")
    with pytest.raises(DataError, match="empty"):
        load_dataset_file(path)


def test_bad_encoding_unknown_suffix_and_missing_file(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("question,answer\ncafé,oui\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin\.csv, line 2: not UTF-8 text"):
        load_dataset_file(path)
    (tmp_path / "data.xlsx").write_bytes(b"PK")
    with pytest.raises(DataError, match="unknown file type '.xlsx'"):
        load_dataset_file(tmp_path / "data.xlsx")
    with pytest.raises(DataError, match="no such file"):
        load_dataset_file(tmp_path / "nope.jsonl")


def test_non_text_message_content_names_the_row(tmp_path):
    rows = MESSAGES + [{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": ""}]}]
    rows[1]["messages"][1]["content"] = None
    loaded = load_dataset_file(write_jsonl(tmp_path / "m.jsonl", rows))
    with pytest.raises(DataError, match="row 1: turn content must be text"):
        to_conversations(loaded)


def test_role_alias_maps_unknown_roles(tmp_path):
    rows = [{"messages": [{"role": "user", "content": "Hi"}, {"role": "narrator", "content": "Hello"}]}]
    loaded = load_dataset_file(write_jsonl(tmp_path / "m.jsonl", rows))
    with pytest.raises(DataError, match="'narrator'"):
        to_conversations(loaded)
    conversations = to_conversations(loaded, role_aliases={"narrator": "assistant"})["conversations"]
    assert conversations[0][1]["role"] == "assistant"
