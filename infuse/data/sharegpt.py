"""Unsloth's dataset helpers, same signatures and outputs, on any machine.

`to_sharegpt` merges columns into one prompt and pairs it with an output column;
`standardize_sharegpt` turns ShareGPT `from`/`value` turns into `role`/`content`.
Both work column-wise on plain Python lists and build the result in one go, instead of
`datasets.map` over row batches: the same result, several times faster (bench/data_prep.py).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from infuse.errors import ColumnError, DataError, RoleError

DEFAULT_ALIASES_FOR_SYSTEM = ("system",)
DEFAULT_ALIASES_FOR_USER = ("user", "human", "input")
DEFAULT_ALIASES_FOR_ASSISTANT = ("gpt", "assistant", "output")

_PLACEHOLDER = re.compile(r"\{(.+?)\}")
_OPTIONAL_BLOCK = re.compile(r"\[\[.+?\]\]", flags=re.DOTALL)

# Key names that say which key of a turn holds the role and which the text.
_ROLE_KEYS = ("from", "role")
_CONTENT_KEYS = ("value", "content", "text")


@dataclass(frozen=True)
class _Segment:
    """One piece of a merged prompt: literal text with `{column}`s, optional or not."""

    template: str
    columns: tuple[str, ...]
    optional: bool


def column_values(dataset, name: str) -> list[Any]:
    """A dataset column as a Python list, through Arrow (much faster than `dataset[name]`)."""
    return dataset.with_format("arrow")[name].to_pylist()


def parse_merged_prompt(merged_prompt: str, column_names: Sequence[str]) -> list[_Segment]:
    """Split a merged prompt into required text and `[[optional]]` blocks; check its columns.

    Raises ColumnError naming a `{column}` that the dataset lacks and listing those it has.
    """
    available = list(column_names)
    for column in _PLACEHOLDER.findall(merged_prompt):
        if column not in available:
            raise ColumnError(
                f"The merged prompt uses '{{{column}}}' but the dataset has no column '{column}'. "
                f"Columns: {', '.join(available)}."
            )
    segments: list[_Segment] = []
    position = 0
    for match in _OPTIONAL_BLOCK.finditer(merged_prompt):
        if match.start() > position:
            text = merged_prompt[position : match.start()]
            segments.append(_Segment(text, tuple(_PLACEHOLDER.findall(text)), optional=False))
        inner = match.group(0)[2:-2]
        columns = tuple(_PLACEHOLDER.findall(inner))
        if not columns:
            raise DataError(
                f"The optional block '{match.group(0)}' names no {{column}}: an optional block "
                "is kept or dropped by its first column, so it needs at least one."
            )
        segments.append(_Segment(inner, columns, optional=True))
        position = match.end()
    if position < len(merged_prompt) or not segments:
        text = merged_prompt[position:]
        segments.append(_Segment(text, tuple(_PLACEHOLDER.findall(text)), optional=False))
    return segments


def merge_columns(
    columns: dict[str, list[Any]], segments: list[_Segment], n_rows: int
) -> list[str]:
    """Render the merged prompt for every row: None renders as "", an optional block is
    dropped when its first column is empty or None."""
    texts = [""] * n_rows
    for segment in segments:
        values = [
            ["" if value is None else value for value in columns[name]] for name in segment.columns
        ]
        if not segment.columns:
            # `str.format` still unescapes `{{`/`}}`, as it does for the whole prompt in Unsloth.
            literal = segment.template.format()
            texts = [text + literal for text in texts]
            continue
        template = segment.template
        names = segment.columns
        rendered: list[str] = []
        for row, text in enumerate(texts):
            row_values = {name: column[row] for name, column in zip(names, values)}
            if segment.optional and row_values[names[0]] == "":
                rendered.append(text)
            else:
                rendered.append(text + template.format(**row_values))
        texts = rendered
    return texts


def _extension_orders(
    n_rows: int, conversation_extension: int, random_state: int
) -> list[np.ndarray]:
    """Row orders for conversation extension: the identity, then one shuffle per extra turn,
    drawn exactly as `datasets.Dataset.shuffle(seed=random_state + j)` draws them."""
    orders = [np.arange(n_rows)]
    for j in range(1, max(conversation_extension - 1, 0) + 1):
        orders.append(np.random.default_rng(random_state + j).permutation(n_rows))
    return orders


def extend_conversations(
    conversations: list[list[dict[str, Any]]], conversation_extension: int, random_state: int = 3407
) -> list[list[dict[str, Any]]]:
    """Join each conversation with `conversation_extension - 1` others (seeded shuffles)."""
    if conversation_extension <= 1:
        return conversations
    orders = _extension_orders(len(conversations), conversation_extension, random_state)
    extended = []
    for row in range(len(conversations)):
        merged: list[dict[str, Any]] = []
        for order in orders:
            merged.extend(conversations[int(order[row])])
        extended.append(merged)
    return extended


def to_sharegpt(
    dataset,
    merged_prompt: str = "",
    merged_column_name: str = "instruction",
    output_column_name: str = "output",
    remove_unused_columns: bool = True,
    conversation_extension: int = 1,
    random_state: int = 3407,
):
    """Merge columns into one user turn and pair it with `output_column_name` (Unsloth's API).

    Returns a `datasets.Dataset` with a `conversations` column of
    `[{"from": "human", "value": ...}, {"from": "gpt", "value": ...}, ...]`; with
    `remove_unused_columns=False` the input columns (and the merged column) are kept.
    `conversation_extension=N` joins each row with N-1 rows drawn by shuffles seeded
    `random_state + j`, the same rows Unsloth picks for the same seed.
    """
    from datasets import Dataset

    names = list(dataset.column_names)
    if "conversations" in names and len(dataset) and isinstance(dataset[0]["conversations"], list):
        raise DataError(
            "This dataset already has a ShareGPT 'conversations' column; "
            "use standardize_sharegpt instead of to_sharegpt."
        )
    if len(dataset) == 0:
        raise DataError("The dataset is empty: to_sharegpt needs at least one row.")
    segments = parse_merged_prompt(merged_prompt, names)
    needed = {name for segment in segments for name in segment.columns}
    columns = {name: column_values(dataset, name) for name in needed}
    n_rows = len(dataset)
    merged = merge_columns(columns, segments, n_rows)

    if output_column_name not in names and output_column_name != merged_column_name:
        raise ColumnError(
            f"Output column '{output_column_name}' is not in the dataset. Columns: {', '.join(names)}."
        )
    outputs = (
        merged
        if output_column_name == merged_column_name
        else column_values(dataset, output_column_name)
    )
    orders = _extension_orders(n_rows, conversation_extension, random_state)
    # A null answer is an empty one (dropped by train/convert, counted by inspect), never "None".
    conversations = _pair_conversations(
        merged, ["" if value is None else str(value) for value in outputs], orders
    )

    if remove_unused_columns:
        return Dataset(pa_table({"conversations": conversations}))
    # With conversation_extension > 1, Unsloth concatenates shuffled copies side by side and
    # fails on the duplicated columns; we keep each row's own columns instead.
    table = dataset.with_format("arrow")[:]
    table = _set_column(table, merged_column_name, merged)
    table = _set_column(table, "conversations", conversations)
    return Dataset(table)


def pa_table(columns: dict[str, Any]):
    """A pyarrow table from named arrays or lists."""
    import pyarrow as pa

    return pa.table(columns)


def _set_column(table, name: str, values):
    """Replace column `name` in place, or append it."""
    import pyarrow as pa

    array = (
        values if isinstance(values, (pa.Array, pa.ChunkedArray)) else pa.array(values, pa.string())
    )
    if name in table.column_names:
        return table.set_column(table.column_names.index(name), name, array)
    return table.append_column(name, array)


def _pair_conversations(users: list[str], assistants: list[str], orders: list[np.ndarray]):
    """human/gpt pairs as an Arrow list<struct<from, value>> array, rows joined per `orders`.

    Built from flat arrays with numpy indexing, never row by row: the same values Unsloth's
    row-wise construction gives, several times faster.
    """
    import pyarrow as pa

    n_rows = len(users)
    texts = pa.array(users + assistants, pa.string())
    partners = np.stack(orders, axis=1)  # row -> the rows whose pairs it holds, in order
    index = np.stack([partners, partners + n_rows], axis=2).reshape(-1)
    flat_texts = texts.take(pa.array(index))
    roles = pa.array(
        np.tile(np.array(["human", "gpt"], dtype=object), n_rows * len(orders)), pa.string()
    )
    turns = pa.StructArray.from_arrays([roles, flat_texts], names=["from", "value"])
    offsets = np.arange(0, 2 * len(orders) * n_rows + 1, 2 * len(orders), dtype=np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), turns)


def _guess_turn_keys(samples: list[dict[str, Any]]) -> tuple[str, str]:
    """Which key of a turn holds the role and which the text: by name, else by variety."""
    keys: list[str] = []
    for turn in samples:
        for key in turn:
            if key not in keys:
                keys.append(key)
    role_key = next((key for key in _ROLE_KEYS if key in keys), None)
    content_key = next((key for key in _CONTENT_KEYS if key in keys), None)
    if role_key and content_key:
        return role_key, content_key
    if len(keys) != 2:
        raise DataError(
            f"Cannot tell the role and text keys of the turns: they have keys {keys}. "
            "Expected 'from'/'value' (ShareGPT) or 'role'/'content'."
        )
    # Unsloth's fallback: the key with fewer distinct values holds the role.
    distinct = {key: len({str(turn.get(key)) for turn in samples}) for key in keys}
    first, second = keys
    return (first, second) if distinct[first] < distinct[second] else (second, first)


def standardize_sharegpt(
    dataset,
    aliases_for_system: Sequence[str] = DEFAULT_ALIASES_FOR_SYSTEM,
    aliases_for_user: Sequence[str] = DEFAULT_ALIASES_FOR_USER,
    aliases_for_assistant: Sequence[str] = DEFAULT_ALIASES_FOR_ASSISTANT,
    column: str = "conversations",
):
    """Turn ShareGPT `from`/`value` turns into `role`/`content` (Unsloth's API).

    Roles map through the aliases (system; user/human/input; gpt/assistant/output); other
    columns are kept. A dataset without the column is returned unchanged, as Unsloth does.
    Raises RoleError naming a role no alias maps, with the row.
    """
    from datasets import Dataset

    if column not in dataset.column_names:
        return dataset
    samples = [
        turn
        for convo in column_values(dataset.select(range(min(50, len(dataset)))), column)
        for turn in (convo or [])
    ]
    if not samples:
        raise DataError(f"Column '{column}' holds no turns in its first rows.")
    role_key, content_key = _guess_turn_keys(samples)

    mapping: dict[str, str] = {}
    for alias in aliases_for_system:
        mapping[alias] = "system"
    for alias in aliases_for_user:
        mapping[alias] = "user"
    for alias in aliases_for_assistant:
        mapping[alias] = "assistant"
    aliases = (list(aliases_for_system), list(aliases_for_user), list(aliases_for_assistant))

    table = dataset.with_format("arrow")[:]
    turns = _standardized_turns(table.column(column), role_key, content_key, mapping, aliases)
    return Dataset(_set_column(table, column, turns))


def _unknown_role_error(row: int, role: Any, aliases: tuple[list[str], ...]) -> RoleError:
    system, user, assistant = aliases
    return RoleError(
        f"Row {row}: role '{role}' is not in the aliases. System: {system}; user: {user}; "
        f"assistant: {assistant}. Add it to one of them "
        "(aliases_for_user=[...] or --role-alias NAME=user)."
    )


def _standardized_turns(
    conversations,
    role_key: str,
    content_key: str,
    mapping: dict[str, str],
    aliases: tuple[list[str], ...],
):
    """Map roles and rename keys on the flat Arrow arrays of every turn at once."""
    import pyarrow as pa
    import pyarrow.compute as pc

    conversations = (
        conversations.combine_chunks()
        if isinstance(conversations, pa.ChunkedArray)
        else conversations
    )
    offsets = conversations.offsets.to_numpy()
    offsets = offsets - offsets[0]  # a sliced array's offsets need not start at 0
    turns = conversations.flatten()  # the struct array of every turn, in row order
    roles = turns.field(role_key)
    texts = turns.field(content_key)
    if (
        not pa.types.is_string(texts.type)
        and not pa.types.is_large_string(texts.type)
        and not pa.types.is_null(texts.type)
    ):
        raise DataError(
            f"Turn text ('{content_key}') must be strings, got Arrow type {texts.type}."
        )
    encoded = (
        pc.dictionary_encode(roles.cast(pa.string())).combine_chunks()
        if isinstance(roles, pa.ChunkedArray)
        else pc.dictionary_encode(roles.cast(pa.string()))
    )
    names = encoded.dictionary.to_pylist()
    for position, name in enumerate(names):
        if name not in mapping:
            first = int(
                np.flatnonzero(encoded.indices.to_numpy(zero_copy_only=False) == position)[0]
            )
            row = int(np.searchsorted(offsets, first, side="right") - 1)
            raise _unknown_role_error(row, name, aliases)
    if roles.null_count:
        first = int(np.flatnonzero(roles.is_null().to_numpy(zero_copy_only=False))[0])
        row = int(np.searchsorted(offsets, first, side="right") - 1)
        raise _unknown_role_error(row, None, aliases)
    mapped = pa.array([mapping[name] for name in names], pa.string()).take(encoded.indices)
    texts = pc.fill_null(texts.cast(pa.string()), "")
    standardized = pa.StructArray.from_arrays([mapped, texts], names=["role", "content"])
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), standardized)


def role_counts(conversations: list[list[dict[str, Any]]]) -> Counter:
    """How many turns of each role the conversations hold."""
    counts: Counter = Counter()
    for convo in conversations:
        counts.update(turn.get("role", turn.get("from")) for turn in convo or [])
    return counts
