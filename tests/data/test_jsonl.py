"""One JSONL reader for every JSONL file infuse reads, with one wording of its errors."""

from __future__ import annotations

import pytest

from infuse.errors import DataError
from infuse.files import read_jsonl


def test_rows_with_line_numbers_blank_lines_bom_and_raw_line_separators(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_bytes('\ufeff{"a": 1}\n\n  \n{"b": "x\u2028y"}\r\n'.encode("utf-8"))
    assert read_jsonl(path) == [(1, {"a": 1}), (4, {"b": "x\u2028y"})]
    path.write_text('[1, 2]\n"text"\n', encoding="utf-8")
    assert read_jsonl(path, objects=False) == [(1, [1, 2]), (2, "text")]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b'{"a": 1}\n{oops\n', r"rows\.jsonl, line 2: invalid JSON \(.* at column 2\); .*fix or remove that line"),
        (b'{"a": 1}\n[1]\n', r"rows\.jsonl, line 2: expected a JSON object per line, got list; fix or remove"),
        (b'{"a": 1}\n{"b": "caf\xe9"}\n', r"rows\.jsonl, line 2: not UTF-8 text \(byte \d+\); re-save"),
    ],
)
def test_errors_name_file_line_and_fix(tmp_path, payload, message):
    path = tmp_path / "rows.jsonl"
    path.write_bytes(payload)
    with pytest.raises(DataError, match=message):
        read_jsonl(path)


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(DataError, match=r"nope\.jsonl: no such file\."):
        read_jsonl(tmp_path / "nope.jsonl")
    with pytest.raises(DataError, match="cannot be read"):
        read_jsonl(tmp_path)  # a folder


def test_a_carriage_return_in_a_csv_header_is_a_data_error(tmp_path):
    """The input hypothesis found: b'\\r\\xc2\\x80' raised the csv module's own error."""
    from infuse.data.loading import load_dataset_file
    from infuse.errors import DataError

    path = tmp_path / "data.csv"
    path.write_bytes(b"\r\xc2\x80")
    with pytest.raises(DataError, match="data.csv: malformed CSV header"):
        load_dataset_file(path)


def test_dataset_loader_on_random_bytes_raises_only_infuse_errors():
    """Fuzz: any bytes in a .jsonl/.json/.csv file give rows or a one-line InfuseError."""
    import tempfile
    from pathlib import Path

    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from infuse.data.loading import load_dataset_file
    from infuse.errors import InfuseError

    starts = [b"", b'{"a": 1}\n', b'[{"instruction": "x", "output": 1}]', b"a,b\n1,2\n",
              b'{"messages": [{"role": "user"}]}\n']

    @settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.sampled_from([".jsonl", ".json", ".csv"]), st.sampled_from(starts), st.binary(max_size=200))
    def load(suffix, start, payload):
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / f"data{suffix}"
            path.write_bytes(start + payload)
            try:
                load_dataset_file(path)
            except InfuseError as error:
                assert "\n" not in str(error).strip()

    load()
