"""to_sharegpt / standardize_sharegpt give Unsloth's outputs (same signatures, same rows)."""

from __future__ import annotations

import pytest
from datasets import Dataset, concatenate_datasets

from infuse.data import standardize_sharegpt, to_sharegpt
from infuse.errors import ColumnError, DataError, RoleError


@pytest.fixture
def rows() -> Dataset:
    return Dataset.from_dict({
        "instruction": ["Add", "Negate", None, "Multiply"],
        "input": ["1 and 2", "", None, "3 and 4"],
        "output": ["3", "-1", "?", "12"],
        "level": [1, 2, 3, 4],
    })


def human_gpt(user: str, assistant: str) -> list[dict[str, str]]:
    return [{"from": "human", "value": user}, {"from": "gpt", "value": assistant}]


def test_optional_block_dropped_when_first_column_empty_or_none(rows):
    result = to_sharegpt(rows, merged_prompt="{instruction}[[\nInput: {input}]]", output_column_name="output")
    assert result.column_names == ["conversations"]
    assert result["conversations"] == [
        human_gpt("Add\nInput: 1 and 2", "3"),
        human_gpt("Negate", "-1"),      # "" drops the block
        human_gpt("", "?"),             # None renders as "" and drops the block
        human_gpt("Multiply\nInput: 3 and 4", "12"),
    ]


def test_several_optional_blocks_and_literal_text(rows):
    result = to_sharegpt(
        rows, merged_prompt="Task: {instruction}[[ on {input}]][[ (level {level})]].",
        output_column_name="output",
    )
    assert result["conversations"][0][0]["value"] == "Task: Add on 1 and 2 (level 1)."
    assert result["conversations"][1][0]["value"] == "Task: Negate (level 2)."


def test_remove_unused_columns_false_keeps_columns_and_merged_column(rows):
    result = to_sharegpt(
        rows, merged_prompt="{instruction}", merged_column_name="prompt",
        output_column_name="output", remove_unused_columns=False,
    )
    assert result.column_names == ["instruction", "input", "output", "level", "prompt", "conversations"]
    assert result["prompt"] == ["Add", "Negate", "", "Multiply"]
    assert result["level"] == [1, 2, 3, 4]


def _unsloth_style_extension(dataset: Dataset, n: int, seed: int) -> list:
    """The reference: shuffled copies side by side, as Unsloth builds them with datasets."""
    base = dataset.rename_columns({"conversations": "conversations0"})
    copies = [base] + [
        base.shuffle(seed=seed + j).rename_columns({"conversations0": f"conversations{j}"})
        for j in range(1, n)
    ]
    joined = concatenate_datasets(copies, axis=1)
    return [sum((row[f"conversations{j}"] for j in range(n)), []) for row in joined]


@pytest.mark.parametrize("extension,seed", [(2, 3407), (3, 7), (5, 0)])
def test_conversation_extension_picks_the_same_rows_as_seeded_shuffles(extension, seed):
    dataset = Dataset.from_dict({"q": [f"q{i}" for i in range(37)], "a": [f"a{i}" for i in range(37)]})
    single = to_sharegpt(dataset, merged_prompt="{q}", output_column_name="a")
    extended = to_sharegpt(
        dataset, merged_prompt="{q}", output_column_name="a",
        conversation_extension=extension, random_state=seed,
    )
    assert extended["conversations"] == _unsloth_style_extension(single, extension, seed)
    assert all(len(convo) == 2 * extension for convo in extended["conversations"])
    # Row i starts with its own pair; a different seed gives different partners.
    assert extended["conversations"][5][0]["value"] == "q5"
    other = to_sharegpt(dataset, merged_prompt="{q}", output_column_name="a",
                        conversation_extension=extension, random_state=seed + 100)
    assert other["conversations"] != extended["conversations"]


def test_unknown_column_is_named_with_the_columns_that_exist(rows):
    with pytest.raises(ColumnError) as error:
        to_sharegpt(rows, merged_prompt="{instruction} {context}", output_column_name="output")
    message = str(error.value)
    assert "'context'" in message and "instruction, input, output, level" in message


def test_missing_output_column_is_named(rows):
    with pytest.raises(ColumnError, match="'answer'"):
        to_sharegpt(rows, merged_prompt="{instruction}", output_column_name="answer")


def test_optional_block_without_column_is_rejected(rows):
    with pytest.raises(DataError, match="optional block"):
        to_sharegpt(rows, merged_prompt="{instruction}[[ no column ]]", output_column_name="output")


def test_already_sharegpt_is_refused():
    dataset = Dataset.from_dict({"conversations": [human_gpt("hi", "hello")]})
    with pytest.raises(DataError, match="standardize_sharegpt"):
        to_sharegpt(dataset, merged_prompt="x")


def test_standardize_maps_aliases_and_keeps_other_columns():
    dataset = Dataset.from_dict({
        "conversations": [
            [{"from": "system", "value": "Be brief."}, {"from": "human", "value": "Hi"},
             {"from": "gpt", "value": "Hello"}],
            [{"from": "input", "value": "2+2?"}, {"from": "output", "value": "4"}],
        ],
        "id": ["a", "b"],
    })
    result = standardize_sharegpt(dataset)
    assert result["id"] == ["a", "b"]
    assert result["conversations"] == [
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
         {"role": "assistant", "content": "Hello"}],
        [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}],
    ]


def test_standardize_detects_keys_by_name_on_a_one_row_dataset():
    # Unsloth guesses the role key from value counts; with one short row where every value
    # is distinct it can pick the wrong key. Named keys need no guess.
    dataset = Dataset.from_dict({"conversations": [[{"value": "x", "from": "human"}, {"value": "y", "from": "gpt"}]]})
    assert standardize_sharegpt(dataset)["conversations"] == [
        [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]
    ]


def test_standardize_unknown_role_names_role_row_and_aliases():
    dataset = Dataset.from_dict({"conversations": [
        [{"from": "human", "value": "a"}, {"from": "gpt", "value": "b"}],
        [{"from": "human", "value": "a"}, {"from": "bot", "value": "b"}],
    ]})
    with pytest.raises(RoleError) as error:
        standardize_sharegpt(dataset)
    message = str(error.value)
    assert "Row 1" in message and "'bot'" in message and "'gpt'" in message
    custom = standardize_sharegpt(dataset, aliases_for_assistant=["gpt", "bot"])
    assert custom["conversations"][1][1] == {"role": "assistant", "content": "b"}


def test_standardize_without_conversations_returns_dataset_unchanged(rows):
    assert standardize_sharegpt(rows) is rows
