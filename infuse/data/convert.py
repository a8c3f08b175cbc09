"""Write conversations out in the formats other tools take.

sharegpt      {"conversations": [{"from": "human"|"gpt"|"system", "value": ...}]}
messages      {"messages": [{"role", "content"}]}         (Hugging Face / TRL)
openai-jsonl  the same as JSON Lines, checked for what hosted fine-tuning services
              (OpenAI, Together, Fireworks chat format) require
alpaca        {"instruction", "input", "output"}         (single-turn only)
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from infuse.errors import DataError
from infuse.files import write_bytes_atomic

TARGET_FORMATS = ("sharegpt", "messages", "alpaca", "openai-jsonl")
_SHAREGPT_ROLES = {"system": "system", "user": "human", "assistant": "gpt"}


def to_format_rows(
    conversations: Iterable[list[dict[str, str]]], target: str
) -> list[dict[str, Any]]:
    """Turn role/content conversations into rows of the target format.

    Raises DataError naming the row when a conversation cannot be expressed in it
    (multi-turn as Alpaca; no assistant turn for a hosted fine-tuning service).
    """
    if target not in TARGET_FORMATS:
        raise DataError(
            f"Unknown target format '{target}'. Choose one of {', '.join(TARGET_FORMATS)}."
        )
    rows: list[dict[str, Any]] = []
    for index, convo in enumerate(conversations):
        if target == "sharegpt":
            rows.append(
                {
                    "conversations": [
                        {"from": _SHAREGPT_ROLES[turn["role"]], "value": turn["content"]}
                        for turn in convo
                    ]
                }
            )
        elif target == "messages":
            rows.append({"messages": [{"role": t["role"], "content": t["content"]} for t in convo]})
        elif target == "openai-jsonl":
            if not any(turn["role"] == "assistant" for turn in convo):
                raise DataError(
                    f"Row {index}: no assistant turn; hosted fine-tuning services reject "
                    "examples without one. Drop the row or add the answer."
                )
            rows.append({"messages": [{"role": t["role"], "content": t["content"]} for t in convo]})
        else:
            rows.append(_alpaca_row(index, convo))
    return rows


def _alpaca_row(index: int, convo: list[dict[str, str]]) -> dict[str, str]:
    roles = [turn["role"] for turn in convo]
    if roles != ["user", "assistant"]:
        raise DataError(
            f"Row {index}: Alpaca holds one instruction and one answer, but this conversation "
            f"has turns {roles}. Convert to 'messages' or 'sharegpt' instead."
        )
    return {"instruction": convo[0]["content"], "input": "", "output": convo[1]["content"]}


def write_rows(rows: list[dict[str, Any]], path: Path, target: str) -> None:
    """Write rows atomically; the file type comes from the suffix (.jsonl .json .parquet .csv)."""
    suffix = path.suffix.lower()
    if target == "openai-jsonl" and suffix != ".jsonl":
        raise DataError(f"{path}: openai-jsonl output must be a .jsonl file.")
    if suffix == ".jsonl":
        payload = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode()
    elif suffix == ".json":
        payload = json.dumps(rows, ensure_ascii=False, indent=1).encode()
    elif suffix == ".parquet":
        import io

        import pyarrow as pa
        import pyarrow.parquet as pq

        buffer = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(rows), buffer)
        payload = buffer.getvalue()
    elif suffix == ".csv":
        if target != "alpaca":
            raise DataError(
                f"{path}: CSV holds flat columns; use it with --to alpaca, or write .jsonl."
            )
        import csv
        import io

        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=["instruction", "input", "output"])
        writer.writeheader()
        writer.writerows(rows)
        payload = text.getvalue().encode()
    else:
        raise DataError(
            f"{path}: unknown output type '{suffix}'. Use .jsonl, .json, .parquet or .csv."
        )
    write_bytes_atomic(path, payload)
