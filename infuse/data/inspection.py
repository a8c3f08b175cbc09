"""`infuse data inspect`: print and understand a dataset before spending GPU hours on it.

Counts rows, roles and turns; measures token lengths under the model's chat template;
finds duplicates, empty and very short answers, rows over the max length, and prompts
that leave nothing to train on; shows samples with the trained part marked; turns each
finding into a plain warning with the fix.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from infuse.models import DEFAULT_MODEL

SHORT_ANSWER_CHARS = 3


@dataclass
class Segment:
    """A stretch of a rendered sample: `trained` when its tokens carry labels."""

    text: str
    trained: bool


@dataclass
class InspectReport:
    """Everything `infuse data inspect` found; `to_dict()` is its `--json` form."""

    path: str
    rows: int
    format: str
    columns: list[str]
    roles: dict[str, int]
    turns_percentiles: dict[str, float]
    token_percentiles: dict[str, float]
    max_seq_len: int
    over_max_len: int
    fully_masked: int
    trained_token_share: float
    duplicates: int
    empty_answers: int  # no answer, or an empty or null one
    short_answers: int
    missing_template_tokens: list[str] = field(default_factory=list)
    token_lengths: list[int] = field(repr=False, default_factory=list)
    samples: list[list[Segment]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    histogram_png: str | None = None

    def to_dict(self) -> dict[str, Any]:
        payload = {key: value for key, value in self.__dict__.items() if key != "token_lengths"}
        payload["samples"] = [
            [{"text": seg.text, "trained": seg.trained} for seg in sample]
            for sample in self.samples
        ]
        return payload


def percentiles(values: list[int] | np.ndarray) -> dict[str, float]:
    """min, p50, p90, p99, max of a list of numbers (all 0 for an empty list)."""
    array = np.asarray(values, dtype=float)
    if array.size == 0:
        return {"min": 0, "p50": 0, "p90": 0, "p99": 0, "max": 0}
    return {
        "min": float(array.min()),
        "p50": float(np.percentile(array, 50)),
        "p90": float(np.percentile(array, 90)),
        "p99": float(np.percentile(array, 99)),
        "max": float(array.max()),
    }


def _segments(tokenizer, input_ids: list[int], labels: list[int]) -> list[Segment]:
    """Split a tokenised sample into runs of trained and untrained tokens, decoded."""
    segments: list[Segment] = []
    start = 0
    for index in range(1, len(input_ids) + 1):
        if index == len(input_ids) or (labels[index] != -100) != (labels[start] != -100):
            text = tokenizer.decode(input_ids[start:index], skip_special_tokens=False)
            segments.append(Segment(text, labels[start] != -100))
            start = index
    return segments


def _answer_texts(convo: list[dict[str, str]]) -> list[str]:
    return [turn["content"] for turn in convo if turn["role"] == "assistant"]


def inspect_conversations(
    conversations: list[list[dict[str, str]]],
    tokenizer,
    *,
    path: str,
    data_format: str,
    columns: list[str],
    max_seq_len: int = 2048,
    n_samples: int = 3,
    histogram_png: Path | None = None,
) -> InspectReport:
    """Measure a list of role/content conversations under `tokenizer`'s chat template."""
    from infuse.data.answers import unanswered_rows
    from infuse.data.masking import encode_conversations
    from infuse.data.vocabulary import missing_special_tokens

    roles = Counter(turn["role"] for convo in conversations for turn in convo)
    turns = [len(convo) for convo in conversations]
    encoded = encode_conversations(tokenizer, conversations, max_seq_len=None)
    lengths = [len(ids) for ids in encoded["input_ids"]]
    # Labels that survive truncation to max_seq_len (a label is for the token itself).
    trained_after_cut = [
        sum(1 for label in labels[:max_seq_len] if label != -100) for labels in encoded["labels"]
    ]
    total_tokens = sum(min(length, max_seq_len) for length in lengths)
    trained_tokens = sum(trained_after_cut)

    keys = [tuple((t["role"], t["content"].strip()) for t in convo) for convo in conversations]
    duplicates = len(keys) - len(set(keys))
    answers = [_answer_texts(convo) for convo in conversations]
    empty_answers = len(unanswered_rows(conversations))
    short_answers = sum(
        1
        for texts in answers
        if texts
        and all(t.strip() for t in texts)
        and min(len(t.strip()) for t in texts) < SHORT_ANSWER_CHARS
    )

    report = InspectReport(
        path=path,
        rows=len(conversations),
        format=data_format,
        columns=columns,
        roles=dict(roles),
        turns_percentiles=percentiles(turns),
        token_percentiles=percentiles(lengths),
        max_seq_len=max_seq_len,
        over_max_len=sum(1 for length in lengths if length > max_seq_len),
        fully_masked=sum(1 for count in trained_after_cut if count == 0),
        trained_token_share=trained_tokens / total_tokens if total_tokens else 0.0,
        duplicates=duplicates,
        empty_answers=empty_answers,
        short_answers=short_answers,
        token_lengths=lengths,
        missing_template_tokens=missing_special_tokens(tokenizer, _template_text(tokenizer)),
    )
    for index in _sample_rows(len(conversations), n_samples):
        report.samples.append(
            _segments(tokenizer, encoded["input_ids"][index], encoded["labels"][index])
        )
    report.warnings = warnings_for(report)
    if histogram_png is not None:
        report.histogram_png = str(write_histogram_png(lengths, max_seq_len, histogram_png))
    return report


def _template_text(tokenizer) -> str:
    template = getattr(tokenizer, "chat_template", None) or ""
    return "\n".join(template.values()) if isinstance(template, dict) else template


def inspect_file(
    path: str | Path,
    *,
    model: str = DEFAULT_MODEL,
    chat_template: str | None = None,
    max_seq_len: int = 2048,
    n_samples: int = 3,
    histogram_png: str | Path | None = None,
    **conversation: Any,
) -> InspectReport:
    """Load a dataset file and inspect it under `model`'s tokenizer (the `data inspect` twin).

    `conversation` keywords say how rows become conversations (`ConversationOptions`).

    The histogram PNG goes to `histogram_png`, by default next to the file as
    `<name>.lengths.png`. Bad sizes and an unwritable PNG folder are refused (ConfigError)
    before any work.
    """
    from infuse.data.loading import ConversationOptions, load_dataset_file
    from infuse.errors import ConfigError
    from infuse.files import check_writable_folder
    from infuse.models import load_tokenizer

    path = Path(path)
    for name, value, least in (("max_seq_len", max_seq_len, 1), ("samples", n_samples, 0)):
        if value < least:
            raise ConfigError(f"{name}={value}: must be >= {least}.")
    settings = ConversationOptions(**conversation)
    plot = Path(histogram_png) if histogram_png else default_histogram_path(path)
    check_writable_folder(plot.parent, setting="--plot path")
    loaded = load_dataset_file(path)
    conversations = settings.conversations(loaded)
    tokenizer = load_tokenizer(model)
    if chat_template:
        from infuse.data.templates import get_chat_template

        tokenizer = get_chat_template(tokenizer, chat_template)
    return inspect_conversations(
        conversations, tokenizer, path=str(loaded.path), data_format=loaded.format,
        columns=loaded.columns, max_seq_len=max_seq_len, n_samples=n_samples, histogram_png=plot,
    )


def default_histogram_path(data_file: Path) -> Path:
    """Where `data inspect` puts the length histogram: beside the data file."""
    return data_file.with_name(data_file.stem + ".lengths.png")


def _sample_rows(n_rows: int, n_samples: int) -> list[int]:
    """Evenly spread sample rows: first, middle, last."""
    if n_samples <= 0:
        return []
    if n_rows <= n_samples:
        return list(range(n_rows))
    if n_samples == 1:
        return [0]
    return sorted({round(i * (n_rows - 1) / (n_samples - 1)) for i in range(n_samples)})


def warnings_for(report: InspectReport) -> list[str]:
    """Plain-words findings, each with the fix."""
    found: list[str] = []
    if report.over_max_len:
        share = report.over_max_len / report.rows
        found.append(
            f"{report.over_max_len} rows ({share:.0%}) are longer than max_seq_len "
            f"{report.max_seq_len} tokens and will be cut (p99 is {report.token_percentiles['p99']:.0f}). "
            "Raise --max-seq-len or drop/split those rows."
        )
    if report.fully_masked:
        found.append(
            f"{report.fully_masked} rows have no trained token left (the answer is cut off or "
            "missing), so they teach nothing. Raise --max-seq-len or shorten the prompts."
        )
    if report.rows and report.trained_token_share < 0.02:
        found.append(
            f"Only {report.trained_token_share:.1%} of tokens are trained on: check the chat "
            "template matches the model (--chat-template) and that answers are not empty."
        )
    if report.duplicates:
        found.append(
            f"{report.duplicates} rows are exact duplicates; they over-weight those examples. "
            "Deduplicate the file."
        )
    if report.empty_answers:
        found.append(
            f"{report.empty_answers} of {report.rows} rows have no answer (empty, null or missing): "
            "`infuse train` and `infuse data convert` leave them out. Fill the answers to use them."
        )
    if report.missing_template_tokens:
        from infuse.data.vocabulary import missing_tokens_message

        found.append(missing_tokens_message(report.missing_template_tokens, None))
    if report.short_answers:
        found.append(
            f"{report.short_answers} rows have answers under {SHORT_ANSWER_CHARS} characters; "
            "check they are not truncated or placeholders."
        )
    if report.roles.get("assistant", 0) == 0:
        found.append("No assistant turns: there is nothing to train on. Check the role mapping.")
    if report.rows < 50:
        found.append(
            f"Only {report.rows} rows: LoRA usually needs a few hundred examples to learn "
            "reliably. Add data, or generate some with `infuse data synth`."
        )
    return found


def write_histogram_png(lengths: list[int], max_seq_len: int, path: Path) -> Path:
    """Token-length histogram with the max length marked, written as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 3.5), dpi=100)
    axes.hist(lengths, bins=min(50, max(5, len(set(lengths)))), color="#4472c4")
    longest = max(lengths, default=0)
    if max_seq_len <= longest * 1.5:
        axes.axvline(max_seq_len, color="#c00000", linestyle="--", label=f"max_seq_len {max_seq_len}")
        axes.legend()
    else:  # the limit is far to the right: say so instead of squashing the bars
        axes.set_title(f"all rows fit max_seq_len {max_seq_len} (longest: {longest} tokens)")
    axes.set_xlabel("tokens per conversation (chat template applied)")
    axes.set_ylabel("rows")
    figure.tight_layout()
    from infuse.files import write_atomic

    write_atomic(path, lambda temp: figure.savefig(temp, format="png"))
    plt.close(figure)
    return path


def terminal_histogram(
    lengths: list[int], bins: int = 10, width: int = 40
) -> list[tuple[str, int, str]]:
    """Rows of (range label, count, bar) for a text histogram."""
    if not lengths:
        return []
    counts, edges = np.histogram(lengths, bins=min(bins, max(1, len(set(lengths)))))
    peak = max(counts.max(), 1)
    return [
        (
            f"{edges[i]:.0f}-{edges[i + 1]:.0f}",
            int(count),
            "█" * max(int(width * count / peak), 1 if count else 0),
        )
        for i, count in enumerate(counts)
    ]
