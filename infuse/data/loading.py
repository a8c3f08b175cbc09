"""Load any instruction dataset file and say what it is.

JSON (an array, or an object holding one), JSONL, CSV, Parquet and saved Hugging Face
datasets. Formats detected from the columns:

    alpaca     instruction / input / output
    sharegpt   conversations of {"from", "value"}
    messages   messages (or conversations) of {"role", "content"}  (OpenAI chat format)
    columns    anything else: merge columns into a prompt with `merged_prompt`
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infuse.data.sharegpt import column_values, standardize_sharegpt, to_sharegpt
from infuse.errors import ColumnError, ConfigError, DataError
from infuse.files import decode_utf8, parse_jsonl

FORMATS = ("alpaca", "sharegpt", "messages", "columns")
ALPACA_PROMPT = "{instruction}[[\n\n{input}]]"


@dataclass
class LoadedData:
    """A dataset file as loaded: the rows, the format detected, and where they came from."""

    dataset: Any  # datasets.Dataset
    format: str
    path: Path
    conversation_column: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def columns(self) -> list[str]:
        return list(self.dataset.column_names)


def _read_text(path: Path) -> str:
    return decode_utf8(path.read_bytes(), path)


def _rows_from_jsonl(path: Path, text: str) -> list[dict[str, Any]]:
    return [row for _number, row in parse_jsonl(text, path)]


def _rows_from_json(path: Path, text: str) -> list[dict[str, Any]]:
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as error:
        if error.msg == "Extra data":  # JSON Lines saved with a .json suffix
            return _rows_from_jsonl(path, text)
        raise DataError(
            f"{path}, line {error.lineno}: malformed JSON ({error.msg} at column {error.colno})."
        ) from None
    if isinstance(payload, dict):
        lists = [value for value in payload.values() if isinstance(value, list)]
        if len(lists) == 1:
            payload = lists[0]
        else:
            return [payload]
    if not isinstance(payload, list):
        raise DataError(f"{path}: expected a JSON array of objects, got {type(payload).__name__}.")
    for index, row in enumerate(payload):
        if not isinstance(row, dict):
            raise DataError(f"{path}, item {index}: expected an object, got {type(row).__name__}.")
    return payload


def _dataset_from_rows(path: Path, rows: list[dict[str, Any]]):
    from datasets import Dataset

    try:
        return Dataset.from_list(rows)
    except Exception as error:  # pyarrow type clashes between rows
        raise DataError(
            f"{path}: rows do not share one shape ({str(error).splitlines()[0]}). "
            "Check that every row's fields have the same types."
        ) from None


def _read_table(path: Path):
    from datasets import Dataset, DatasetDict, load_from_disk

    suffix = path.suffix.lower()
    if path.is_dir():
        try:
            loaded = load_from_disk(str(path))
        except Exception as error:
            raise DataError(
                f"{path}: a folder, but not a saved Hugging Face dataset ({error})."
            ) from None
        if isinstance(loaded, DatasetDict):
            split = "train" if "train" in loaded else next(iter(loaded))
            return loaded[split]
        return loaded
    if suffix == ".jsonl":
        return _dataset_from_rows(path, _rows_from_jsonl(path, _read_text(path)))
    if suffix == ".json":
        return _dataset_from_rows(path, _rows_from_json(path, _read_text(path)))
    if suffix in (".csv", ".tsv"):
        import csv
        import io

        import pyarrow as pa
        import pyarrow.csv as pacsv

        delimiter = "\t" if suffix == ".tsv" else ","
        text = _read_text(path)  # encoding check with a clear message
        try:
            header = next(csv.reader(io.StringIO(text), delimiter=delimiter), [])
        except csv.Error as error:  # e.g. a lone carriage return inside the header
            raise DataError(f"{path}: malformed CSV header ({error}).") from None
        try:
            table = pacsv.read_csv(
                path,
                parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
                convert_options=pacsv.ConvertOptions(
                    column_types={name: pa.string() for name in header},
                    strings_can_be_null=True,
                ),
            )
        except pa.ArrowInvalid as error:
            raise DataError(f"{path}: malformed CSV ({error}).") from None
        return Dataset(table)
    if suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            return Dataset(pq.read_table(path))
        except (pa.ArrowInvalid, OSError) as error:
            raise DataError(f"{path}: not a readable Parquet file ({error}).") from None
    raise DataError(
        f"{path}: unknown file type '{suffix}'. Use .json, .jsonl, .csv, .tsv, .parquet "
        "or a folder saved with datasets' save_to_disk."
    )


def _turn_keys(dataset, column: str) -> set[str]:
    keys: set[str] = set()
    for convo in column_values(dataset.select(range(min(20, len(dataset)))), column):
        if not isinstance(convo, list):
            return set()
        for turn in convo:
            if isinstance(turn, dict):
                keys.update(turn)
    return keys


def detect_format(dataset) -> tuple[str, str | None]:
    """Return (format, conversation column) from the columns and the turns' keys."""
    names = set(dataset.column_names)
    for column in ("messages", "conversations", "conversation", "chat"):
        if column in names:
            keys = _turn_keys(dataset, column)
            if {"role", "content"} <= keys:
                return "messages", column
            if {"from", "value"} <= keys:
                return "sharegpt", column
    if {"instruction", "output"} <= names:
        return "alpaca", None
    return "columns", None


def load_dataset_file(path: str | Path) -> LoadedData:
    """Load a dataset file and detect its format.

    Raises DataError naming the file (and line/row) when it is missing, malformed, empty,
    badly encoded or of an unknown type.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder.")
    dataset = _read_table(path)
    if len(dataset) == 0:
        raise DataError(f"{path}: the dataset is empty (no rows).")
    data_format, column = detect_format(dataset)
    return LoadedData(dataset=dataset, format=data_format, path=path, conversation_column=column)


@dataclass(frozen=True)
class ConversationOptions:
    """How rows become conversations: the keywords of `to_conversations`, checked when made
    (ConfigError), so a bad setting is refused before any work."""

    merged_prompt: str | None = None
    output_column: str | None = None
    system_prompt: str | None = None
    conversation_extension: int = 1
    random_state: int = 3407
    role_aliases: dict[str, str] | None = None

    def __post_init__(self) -> None:
        if self.conversation_extension < 1:
            raise ConfigError(
                f"conversation_extension={self.conversation_extension}: must be >= 1 (1 = off)."
            )

    def conversations(self, loaded: LoadedData) -> list:
        """The `conversations` column `to_conversations` makes of `loaded`."""
        return to_conversations(loaded, **vars(self))["conversations"]


def to_conversations(
    loaded: LoadedData,
    *,
    merged_prompt: str | None = None,
    output_column: str | None = None,
    system_prompt: str | None = None,
    conversation_extension: int = 1,
    random_state: int = 3407,
    role_aliases: dict[str, str] | None = None,
):
    """Turn any loaded dataset into one `conversations` column of role/content turns.

    Alpaca rows merge instruction and input (or `merged_prompt`); free-form columns need
    `merged_prompt` and `output_column`. Returns a `datasets.Dataset`.
    """
    from datasets import Dataset

    dataset = loaded.dataset
    if loaded.format in ("sharegpt", "messages"):
        column = loaded.conversation_column or "conversations"
        if column != "conversations":
            dataset = dataset.rename_column(column, "conversations")
        aliases = {
            "system": ["system"],
            "user": ["user", "human", "input"],
            "assistant": ["gpt", "assistant", "output", "model", "bot"],
        }
        for alias, role in (role_aliases or {}).items():
            aliases.setdefault(role, []).append(alias)
        if loaded.format == "sharegpt" or role_aliases or _needs_role_mapping(dataset):
            dataset = standardize_sharegpt(
                dataset, aliases["system"], aliases["user"], aliases["assistant"]
            )
        conversations = column_values(dataset, "conversations")
        if conversation_extension > 1:
            from infuse.data.sharegpt import extend_conversations

            conversations = extend_conversations(
                conversations, conversation_extension, random_state
            )
    else:
        if loaded.format == "alpaca":
            merged_prompt = merged_prompt or (
                ALPACA_PROMPT if "input" in dataset.column_names else "{instruction}"
            )
            output_column = output_column or "output"
        elif not merged_prompt or not output_column:
            raise ColumnError(
                f"{loaded.path}: free-form columns ({', '.join(loaded.columns)}); say how to build "
                "a conversation with --merged-prompt '...{column}...' and --output-column NAME."
            )
        _check_text_columns(loaded.path, dataset, output_column)
        sharegpt = to_sharegpt(
            dataset,
            merged_prompt=merged_prompt,
            output_column_name=output_column,
            conversation_extension=conversation_extension,
            random_state=random_state,
        )
        conversations = column_values(standardize_sharegpt(sharegpt), "conversations")
    _check_conversations(loaded.path, conversations)
    if system_prompt:
        conversations = [
            convo
            if convo and convo[0]["role"] == "system"
            else [{"role": "system", "content": system_prompt}, *convo]
            for convo in conversations
        ]
    return Dataset.from_dict({"conversations": conversations})


def _check_text_columns(path: Path, dataset, column: str) -> None:
    """The answer column must hold text (or numbers, or nothing): an object or a list would be
    trained as its Python spelling. Names the first row that is not (1-based)."""
    if column not in dataset.column_names:
        return  # to_sharegpt names the missing column
    for row, value in enumerate(column_values(dataset, column), start=1):
        if isinstance(value, (dict, list)):
            raise DataError(
                f"{path}, row {row}: the answer column {column!r} holds a "
                f"{'JSON object' if isinstance(value, dict) else 'list'}, not text. Give text "
                "answers (or choose another column with --output-column)."
            )


def _needs_role_mapping(dataset) -> bool:
    """True when a role/content dataset uses roles other than system/user/assistant."""
    for convo in column_values(dataset.select(range(min(200, len(dataset)))), "conversations"):
        for turn in convo or []:
            if turn.get("role") not in ("system", "user", "assistant"):
                return True
    return False


def _check_conversations(path: Path, conversations: list) -> None:
    """Every turn must have a known role and string content; say which row does not."""
    for row, convo in enumerate(conversations):
        if not convo:
            raise DataError(f"{path}, row {row}: the conversation has no turns.")
        for turn in convo:
            content = turn.get("content")
            if not isinstance(content, str):
                raise DataError(
                    f"{path}, row {row}: turn content must be text, got "
                    f"{type(content).__name__}. Multimodal parts are not supported."
                )
            if turn.get("role") not in ("system", "user", "assistant"):
                raise DataError(
                    f"{path}, row {row}: unknown role '{turn.get('role')}'. Map it with "
                    "--role-alias NAME=user|assistant|system."
                )
