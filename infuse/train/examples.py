"""Turn a dataset file into token/label examples for training, and check them before training.

The data layer (`infuse.data`) loads the file and renders conversations with the chat
template; here we decide what a run trains on: the eval split, the length checks ("the
prompt alone is longer than max_seq_len"), and the masked-label sanity check that catches a
template that does not match the data.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from infuse.errors import ConfigError, DataError, TemplateError
from infuse.train.config import RunConfig

IGNORE = -100


@dataclass
class Example:
    """One training sequence: `targets[t]` is the token to predict after `input_ids[t]`."""

    input_ids: list[int]
    targets: list[int]
    row: int

    @property
    def trained_tokens(self) -> int:
        return sum(1 for t in self.targets if t != IGNORE)


@dataclass
class TokenData:
    """What a run trains and evaluates on, plus the checks' findings."""

    train: list[Example]
    eval: list[Example]
    chat_template: str
    warnings: list[str] = field(default_factory=list)
    dropped_rows: int = 0  # conversations left out because an answer was null or empty

    @property
    def unlabelled_rows(self) -> int:
        """Training rows none of whose tokens carry a label (they teach nothing)."""
        return sum(1 for e in self.train if e.trained_tokens == 0)

    @property
    def trained_share(self) -> float:
        total = sum(len(e.input_ids) for e in self.train)
        return sum(e.trained_tokens for e in self.train) / max(total, 1)


def shift_targets(labels: list[int]) -> list[int]:
    """Labels aligned to inputs (HF style) -> next-token targets; the last position predicts nothing."""
    return [*labels[1:], IGNORE]


def apply_chat_template_choice(tokenizer, name: str | None) -> str:
    """Put the chosen chat template on `tokenizer` (None: keep its own); return the template text.

    Raises TemplateError when the tokenizer has no template and none was named.
    """
    if name:
        from infuse.data.templates import get_chat_template

        result = get_chat_template(tokenizer, name)
        if result is not None and result is not tokenizer and getattr(result, "chat_template", None):
            tokenizer.chat_template = result.chat_template
    template = tokenizer.chat_template
    if isinstance(template, dict):  # several named templates: train with the default one
        template = template.get("default") or next(iter(template.values()))
        tokenizer.chat_template = template
    if not template:
        raise TemplateError(
            "The model's tokenizer has no chat template. Name one with --chat-template "
            "(e.g. chatml, llama-3, gemma)."
        )
    return template


def build_token_data(config: RunConfig, tokenizer) -> TokenData:
    """Load, template, tokenise and check the dataset of `config`; split off the eval part.

    Raises DataError/ColumnError for unusable data and ConfigError when a prompt does not fit
    `max_seq_len`; nothing here needs the model weights, so these come before training.
    """
    from infuse.data.answers import describe_dropped, drop_unanswered
    from infuse.data.masking import encode_conversations

    template = apply_chat_template_choice(tokenizer, config.chat_template)
    template_warnings = check_template_tokens(tokenizer, template, config.chat_template)
    conversations = load_conversations(config)
    total_rows = len(conversations)
    conversations, dropped = drop_unanswered(conversations, source=config.data)
    left_out = set(dropped)
    file_rows = [row for row in range(total_rows) if row not in left_out]  # row numbers in the file
    # Encode once without a limit to report prompts that cannot fit, then with the limit.
    full = encode_conversations(
        tokenizer, conversations, max_seq_len=None,
        train_on_responses_only=config.train_on_responses_only,
    )
    _check_lengths(config, full["labels"], file_rows)
    encoded = encode_conversations(
        tokenizer, conversations, max_seq_len=config.max_seq_len,
        train_on_responses_only=config.train_on_responses_only,
    )
    examples = [
        Example(input_ids=list(ids), targets=shift_targets(list(labels)), row=row)
        for row, ids, labels in zip(file_rows, encoded["input_ids"], encoded["labels"], strict=True)
    ]
    train, held_out = split_eval(examples, config.eval_split, config.seed)
    data = TokenData(train=train, eval=held_out, chat_template=template, dropped_rows=len(dropped))
    data.warnings += template_warnings
    if dropped:
        data.warnings.append(describe_dropped(dropped, total_rows))
    _check_masks(config, data)
    return data


def load_conversations(config: RunConfig) -> list[list[dict[str, str]]]:
    """The dataset of `config` as role/content conversations, read as training reads it (column
    mapping, merged prompt, system prompt, conversation extension); before templating."""
    from infuse.data.loading import load_dataset_file, to_conversations

    return to_conversations(
        load_dataset_file(config.data),
        merged_prompt=config.merged_prompt,
        output_column=config.output_column,
        system_prompt=config.system_prompt,
        conversation_extension=config.conversation_extension,
        random_state=config.seed,
    )["conversations"]


def longest_sequence(config: RunConfig, tokenizer) -> int:
    """Tokens of the longest training row of `config`, templated and uncut (0 for none)."""
    from infuse.data.answers import drop_unanswered
    from infuse.data.masking import encode_conversations

    apply_chat_template_choice(tokenizer, config.chat_template)
    conversations, _dropped = drop_unanswered(load_conversations(config), source=config.data)
    encoded = encode_conversations(
        tokenizer, conversations, max_seq_len=None,
        train_on_responses_only=config.train_on_responses_only,
    )
    return max((len(ids) for ids in encoded["input_ids"]), default=0)


def split_eval(examples: list[Example], share: float, seed: int) -> tuple[list[Example], list[Example]]:
    """Hold out `share` of the examples (at least one when share > 0), chosen by `seed`."""
    if share <= 0:
        return examples, []
    count = max(1, round(len(examples) * share))
    if count >= len(examples):
        raise ConfigError(
            f"eval_split={share} leaves no training rows out of {len(examples)}; use a smaller split."
        )
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    held = set(order[:count])
    return (
        [e for i, e in enumerate(examples) if i not in held],
        [e for i, e in enumerate(examples) if i in held],
    )


def _check_lengths(config: RunConfig, labels_per_row: list[list[int]], file_rows: list[int]) -> None:
    """A row whose first trained token lies past max_seq_len would train on nothing: refuse."""
    too_long = []
    for row, labels in enumerate(labels_per_row):
        first = next((i for i, label in enumerate(labels) if label != IGNORE), None)
        if first is not None and first >= config.max_seq_len:
            too_long.append((file_rows[row], first))
    if too_long:
        row, prompt_len = too_long[0]
        need = max(length for _row, length in too_long) + 1
        raise ConfigError(
            f"{config.data}, row {row}: the prompt is {prompt_len} tokens, longer than "
            f"max_seq_len={config.max_seq_len} ({len(too_long)} row(s) like this), so nothing of "
            f"the answer would be trained. Raise --max-seq-len to at least {need} or shorten the prompts."
        )


def _check_masks(config: RunConfig, data: TokenData) -> None:
    """No trained tokens at all is an error; almost none is a warning (wrong template?)."""
    if not data.train:
        raise DataError(f"{config.data}: no training rows left after the eval split.")
    trained = sum(e.trained_tokens for e in data.train)
    if trained == 0:
        raise DataError(
            f"{config.data}: every label is masked, so nothing would be trained. The chat template "
            "probably does not mark assistant turns the way the data does: check --chat-template, "
            "or turn off --train-on-responses-only."
        )
    # A small share of trained tokens alone is no fault (short answers after long passages,
    # as in RAFT rows); rows that train on nothing are: the template missed their answers.
    empty = data.unlabelled_rows
    if empty > len(data.train) // 2:
        data.warnings.append(
            f"Only {data.trained_share:.1%} of tokens are trained ({empty} of {len(data.train)} rows "
            "train on nothing): the chat template may not match the data. Check --chat-template "
            "with `infuse data inspect`."
        )


def check_template_tokens(tokenizer, template: str, name: str | None = None) -> list[str]:
    """A warning naming the template's special tokens that the tokenizer lacks (none: no warning).

    A warning, not a refusal: some templates (zephyr's `<|assistant|>`) are plain text by design.
    """
    from infuse.data.vocabulary import missing_special_tokens, missing_tokens_message

    missing = missing_special_tokens(tokenizer, template)
    return [missing_tokens_message(missing, name)] if missing else []
