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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from infuse.errors import ConfigError, DataError
from infuse.files import check_writable_folder, remove_stale_temps, write_bytes_atomic

TARGET_FORMATS = ("sharegpt", "messages", "alpaca", "openai-jsonl")
OUTPUT_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv")
_SHAREGPT_ROLES = {"system": "system", "user": "human", "assistant": "gpt"}


@dataclass
class ConvertResult:
    """What `convert_file` read and wrote; `to_dict()` is `infuse data convert --json`."""

    source: str
    output: str
    detected_format: str
    format: str
    rows: int  # rows written
    source_rows: int  # conversations read
    dropped_rows: list[int] = field(default_factory=list)  # left out: empty or null answer
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def convert_file(
    source: str | Path,
    destination: str | Path,
    *,
    target: str,
    **conversation: Any,
) -> ConvertResult:
    """Convert dataset file `source` into `destination` in format `target` (the `data convert` twin).

    `conversation` keywords say how rows become conversations (`ConversationOptions`:
    merged_prompt, output_column, system_prompt, conversation_extension, random_state,
    role_aliases).

    Rows whose answer is empty or null are left out and counted (every row empty: DataError).
    Refused before any work (ConfigError): an unknown format or output type, a size below 1,
    an output that is the input, an output folder that cannot be written. Temporary files a
    killed earlier convert left beside `destination` are removed.
    """
    from infuse.data.answers import describe_dropped, drop_unanswered
    from infuse.data.loading import ConversationOptions, load_dataset_file

    source, destination = Path(source), Path(destination)
    check_output_path(destination, target)
    settings = ConversationOptions(**conversation)
    if destination.exists() and source.exists() and destination.resolve() == source.resolve():
        raise ConfigError(f"The output {destination} is the input file: converting would replace it. "
                          "Give another output file.")
    check_writable_folder(destination.parent, setting="output file")
    remove_stale_temps(destination)
    loaded = load_dataset_file(source)
    conversations = settings.conversations(loaded)
    kept, dropped = drop_unanswered(conversations, source=str(source))
    rows = to_format_rows(kept, target)
    write_rows(rows, destination, target)
    return ConvertResult(
        source=str(source), output=str(destination), detected_format=loaded.format, format=target,
        rows=len(rows), source_rows=len(conversations), dropped_rows=dropped,
        warnings=[describe_dropped(dropped, len(conversations))] if dropped else [],
    )


def check_output_path(path: Path, target: str) -> None:
    """Refuse an unknown target format or an output type that cannot hold it (before any work)."""
    if target not in TARGET_FORMATS:
        raise ConfigError(f"Unknown target format '{target}'. Choose one of {', '.join(TARGET_FORMATS)}.")
    suffix = path.suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise ConfigError(f"{path}: unknown output type '{suffix}'. Use .jsonl, .json, .parquet or .csv.")
    if target == "openai-jsonl" and suffix != ".jsonl":
        raise ConfigError(f"{path}: openai-jsonl output must be a .jsonl file.")
    if suffix == ".csv" and target != "alpaca":
        raise ConfigError(f"{path}: CSV holds flat columns; use it with --to alpaca, or write .jsonl.")
    if path.exists() and path.is_dir():
        raise ConfigError(f"{path} is a folder; give a file name for the output.")


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
