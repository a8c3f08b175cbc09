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


def _extension_orders(n_rows: int, conversation_extension: int, random_state: int) -> list[np.ndarray]:
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
    columns = {name: dataset[name] for name in needed}
    n_rows = len(dataset)
    merged = merge_columns(columns, segments, n_rows)

    if output_column_name not in names and output_column_name != merged_column_name:
        raise ColumnError(
            f"Output column '{output_column_name}' is not in the dataset. Columns: {', '.join(names)}."
        )
    outputs = merged if output_column_name == merged_column_name else dataset[output_column_name]
    conversations = [
        [{"from": "human", "value": str(user)}, {"from": "gpt", "value": str(assistant)}]
        for user, assistant in zip(merged, outputs)
    ]
    conversations = extend_conversations(conversations, conversation_extension, random_state)

    if remove_unused_columns:
        return Dataset.from_dict({"conversations": conversations})
    # With conversation_extension > 1, Unsloth concatenates shuffled copies side by side and
    # fails on the duplicated columns; we keep each row's own columns instead.
    table = {name: dataset[name] for name in names}
    table[merged_column_name] = merged
    table["conversations"] = conversations
    return Dataset.from_dict(table)


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
    conversations = dataset[column]
    samples = [turn for convo in conversations[:50] for turn in (convo or [])]
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

    standardized = []
    for row, convo in enumerate(conversations):
        turns = []
        for turn in convo or []:
            role = turn.get(role_key)
            if role not in mapping:
                raise RoleError(
                    f"Row {row}: role '{role}' is not in the aliases. System: "
                    f"{list(aliases_for_system)}; user: {list(aliases_for_user)}; assistant: "
                    f"{list(aliases_for_assistant)}. Add it to one of them "
                    "(aliases_for_user=[...] or --role-alias NAME=user)."
                )
            text = turn.get(content_key)
            if text is not None and not isinstance(text, str):
                raise DataError(
                    f"Row {row}: turn text must be a string, got {type(text).__name__}."
                )
            turns.append({"role": mapping[role], "content": "" if text is None else text})
        standardized.append(turns)

    table = {name: dataset[name] for name in dataset.column_names}
    table[column] = standardized
    return Dataset.from_dict(table)


def role_counts(conversations: list[list[dict[str, Any]]]) -> Counter:
    """How many turns of each role the conversations hold."""
    counts: Counter = Counter()
    for convo in conversations:
        counts.update(turn.get("role", turn.get("from")) for turn in convo or [])
    return counts
