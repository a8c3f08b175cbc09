"""Unsloth-compatible `train_on_responses_only`: labels for already tokenised data.

Unsloth's rule on token ids: train on what follows each response part (e.g.
`<|im_start|>assistant\\n`) up to the next instruction part (`<|im_start|>user\\n`) or the end.
The parts are guessed from the chat template when not given. infuse's own data path does not
need this (`encode_conversations` masks from the template directly); it is here so Unsloth
training scripts port unchanged.
"""

from __future__ import annotations

from os.path import commonprefix
from typing import Any

from infuse.data.masking import IGNORE_INDEX, _sentinel, template_profile
from infuse.errors import DataError, TemplateError


def guess_template_parts(tokenizer: Any) -> tuple[str, str]:
    """(instruction_part, response_part) of the tokenizer's template, read off probe renderings.

    e.g. chatml: ("<|im_start|>user\\n", "<|im_start|>assistant\\n"); llama-3.1: the user and
    assistant headers; mistral-nemo: ("[INST]", "[/INST]").
    """
    profile = template_profile(tokenizer)
    q1, a1, q2, a2 = (_sentinel(i) for i in range(4))
    two = profile.render(
        [
            {"role": "user", "content": q1},
            {"role": "assistant", "content": a1},
            {"role": "user", "content": q2},
            {"role": "assistant", "content": a2},
        ]
    )
    between_turns = two.split(a1, 1)[1].split(q2, 1)[0]
    if between_turns.startswith(profile.end_of_turn):
        between_turns = between_turns[len(profile.end_of_turn) :]
    instruction_part = between_turns.lstrip()
    prompt = [{"role": "user", "content": q1}]
    with_prompt, without = profile.render(prompt, True), profile.render(prompt, False)
    shared = commonprefix([with_prompt, without])
    if shared != without:  # cut back to a whitespace boundary (Phi-3.5: eos vs <|assistant|>)
        shared = shared[
            : max((i + 1 for i, char in enumerate(shared) if char.isspace()), default=0)
        ]
    response_part = with_prompt[len(shared) :]
    if not response_part.strip():
        response_part = two.split(q2, 1)[1].split(a2, 1)[0].lstrip()
    if not instruction_part.strip() or not response_part.strip():
        raise TemplateError(
            "Could not tell the instruction and response parts of this chat template apart; "
            "pass instruction_part= and response_part= explicitly."
        )
    return instruction_part, response_part


def _part_variants(tokenizer: Any, part: str) -> list[tuple[list[int], bool]]:
    """Token ids of `part` as written and with its outer whitespace dropped (flag: stripped)."""
    variants = [(tokenizer.encode(part, add_special_tokens=False), False)]
    stripped = tokenizer.encode(part.strip(), add_special_tokens=False)
    if stripped and stripped != variants[0][0]:
        variants.append((stripped, True))
    return [v for v in variants if v[0]]


def _find(ids: list[int], needle: list[int], start: int) -> int:
    first, size = needle[0], len(needle)
    for i in range(start, len(ids) - size + 1):
        if ids[i] == first and ids[i : i + size] == needle:
            return i
    return -1


def response_labels(
    ids: list[int],
    instruction: list[tuple[list[int], bool]],
    response: list[tuple[list[int], bool]],
    whitespace_ids: frozenset[int],
    last_response_only: bool = False,
) -> list[int]:
    """Unsloth's rule: label the tokens after each response part up to the next instruction part."""
    labels = [IGNORE_INDEX] * len(ids)
    response_ids, stripped = next(
        ((r, s) for r, s in response if _find(ids, r, 0) >= 0), (None, False)
    )
    if response_ids is None:
        return labels
    spans, position = [], 0
    while (found := _find(ids, response_ids, position)) >= 0:
        start = found + len(response_ids)
        while stripped and start < len(ids) and ids[start] in whitespace_ids:
            start += 1
        ends = [e for e in (_find(ids, q, start) for q, _ in instruction) if e >= 0]
        end = min(ends) if ends else len(ids)
        spans.append((start, end))
        position = max(end, start)
    for start, end in spans[-1:] if last_response_only else spans:
        labels[start:end] = ids[start:end]
    return labels


def train_on_responses_only(
    trainer_or_dataset: Any,
    instruction_part: str | None = None,
    response_part: str | None = None,
    tokenizer: Any = None,
    *,
    last_response_only: bool = False,
    num_proc: int | None = None,
) -> Any:
    """Unsloth-compatible: add `labels` that train only on responses to tokenised data.

    Accepts a `datasets.Dataset` with `input_ids`, a dict of columns, or a trainer-like object
    with `.train_dataset`/`.eval_dataset` (and `.processing_class` or `.tokenizer`); returns the
    same kind. The parts default to `guess_template_parts(tokenizer)`. A trainer whose collator
    would overwrite labels gets a `DataCollatorForSeq2Seq` instead, as Unsloth does.
    """
    target = trainer_or_dataset
    is_trainer = hasattr(target, "train_dataset")
    if tokenizer is None and is_trainer:
        tokenizer = getattr(target, "processing_class", None) or getattr(target, "tokenizer", None)
    if tokenizer is None:
        raise TemplateError("train_on_responses_only needs the tokenizer: pass tokenizer=...")
    tokenizer = getattr(tokenizer, "tokenizer", tokenizer)  # a multimodal processor's text part
    if (instruction_part is None) != (response_part is None):
        raise TemplateError(
            "Give both instruction_part and response_part, or neither to guess them."
        )
    if instruction_part is None:
        instruction_part, response_part = guess_template_parts(tokenizer)
    instruction = _part_variants(tokenizer, instruction_part)
    response = _part_variants(tokenizer, response_part)
    if not instruction or not response:
        raise TemplateError("instruction_part and response_part must not tokenise to nothing.")
    vocab = tokenizer.get_vocab()
    whitespace_ids = frozenset(i for t, i in vocab.items() if not tokenizer.decode([i]).strip())

    def add_labels(batch: dict[str, list]) -> dict[str, list]:
        rows = [list(ids) for ids in batch["input_ids"]]
        return {
            "labels": [
                response_labels(r, instruction, response, whitespace_ids, last_response_only)
                for r in rows
            ]
        }

    def apply(data: Any) -> Any:
        if data is None:
            return None
        if isinstance(data, dict) and "input_ids" in data:
            return {**data, **add_labels(data)}
        if isinstance(data, dict):  # several eval sets by name
            return {name: apply(part) for name, part in data.items()}
        if "input_ids" not in getattr(data, "column_names", ()):
            raise DataError(
                "train_on_responses_only needs tokenised data with an 'input_ids' column."
            )
        return data.map(add_labels, batched=True, num_proc=num_proc, desc="Masking instructions")

    if not is_trainer:
        return apply(target)
    target.train_dataset = apply(target.train_dataset)
    if getattr(target, "eval_dataset", None) is not None:
        target.eval_dataset = apply(target.eval_dataset)
    from transformers import DataCollatorForLanguageModeling, DataCollatorForSeq2Seq

    if isinstance(getattr(target, "data_collator", None), DataCollatorForLanguageModeling):
        target.data_collator = DataCollatorForSeq2Seq(tokenizer=tokenizer)
    return target
