"""Forgetting check: does the fine-tuned adapter still know what the base model knew?

    check_forgetting(base, adapter, questions=None) -> ForgettingResult

General questions (`infuse/samples/general.jsonl`, or your own) are asked to the base model;
those it answers right are asked again to the adapter. The ones it now gets wrong are what the
fine-tune made it forget (fine-tunes do: LLaMA-Factory #2611); the diagnosis `forgetting`
fires when too many are lost (`infuse.eval.diagnosis.check_forgetting`).

    replay_rows(answer, count=None) -> training rows

The remedy: other general questions (`general_replay.jsonl`) answered by the base itself, mixed
into the training data (quickstart does).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

GENERAL_QUESTIONS = Path(__file__).resolve().parents[1] / "samples" / "general.jsonl"
# Other general questions, for training rows that keep what the base knows (`replay_rows`);
# never the check's own questions, so the check stays a fair test.
REPLAY_QUESTIONS = Path(__file__).resolve().parents[1] / "samples" / "general_replay.jsonl"


@dataclass
class ForgettingResult:
    """What the base answered right, and which of those the adapter lost (with its answers)."""

    asked: int
    known_by_base: list[str] = field(default_factory=list)  # question ids
    lost: list[dict[str, str]] = field(default_factory=list)  # {"id", "question", "base", "adapter"}

    @property
    def lost_share(self) -> float | None:
        """Share of the base's right answers the adapter got wrong (None: the base knew none)."""
        return len(self.lost) / len(self.known_by_base) if self.known_by_base else None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "lost_share": self.lost_share}


def _right(text: str, references: Sequence[str]) -> bool:
    from infuse.eval import scoring

    return (
        not scoring.is_no_answer(text)
        and bool(scoring.contains_answer(text, references))
        and not scoring.contradicts(text, references)
    )


def check_forgetting(
    base: Any,
    adapter: Any,
    questions: Sequence[Any] | str | Path | None = None,
    *,
    max_new_tokens: int = 32,
    base_answers: bool = False,
    on_progress: Callable[..., None] | None = None,
) -> ForgettingResult:
    """Ask `questions` (EvalQuestions or a question file; default: the packaged general set)
    to the base method, then those it got right to the adapter method (both answer methods:
    `.answer(question, max_new_tokens=...) -> Answer`).

    With `base_answers` the base model's own answers are the references (every question it
    answers counts as known): for a model that knows too little to answer the general set.
    """
    from infuse.eval.questions import load_questions

    if questions is None or isinstance(questions, (str, Path)):
        questions = load_questions(questions or GENERAL_QUESTIONS)
    questions = [q for q in questions if q.answerable or base_answers]
    result = ForgettingResult(asked=len(questions))
    total = len(questions)
    done = 0
    for question in questions:
        base_text = base.answer(question.question, max_new_tokens=max_new_tokens).text
        done += 1
        if on_progress is not None:
            on_progress(done, total, method="forgetting")
        references = [base_text.strip()] if base_answers else question.references
        if not references or not references[0] or not _right(base_text, references):
            continue
        result.known_by_base.append(question.id)
        adapter_text = adapter.answer(question.question, max_new_tokens=max_new_tokens).text
        if not _right(adapter_text, references):
            result.lost.append(
                {"id": question.id, "question": question.question, "base": base_text,
                 "adapter": adapter_text}
            )
    return result


def replay_rows(
    answer: Callable[[str], str],
    *,
    count: int | None = None,
    questions: Sequence[Any] | str | Path | None = None,
) -> list[dict[str, Any]]:
    """Training rows that keep what the base model knows: general questions (default: the
    packaged replay set, not the forgetting check's) answered by the base itself (`answer`:
    question -> the base's reply), kept only where that reply is right, at most `count`.

    Mixed into a fine-tune's data they hold the adapter to the base's own answers on things
    the documents do not touch (self-distilled replay), so a small model trained for several
    epochs on new facts does not forget the rest. Only right answers are kept: teaching the
    base facts it did not know raises hallucination (Gekhman et al., 2024).
    """
    from infuse.eval.questions import load_questions

    if questions is None or isinstance(questions, (str, Path)):
        questions = load_questions(questions or REPLAY_QUESTIONS)
    rows: list[dict[str, Any]] = []
    for question in questions:
        if count is not None and len(rows) >= count:
            break
        if not question.answerable:
            continue
        reply = answer(question.question).strip()
        if reply and _right(reply, question.references):
            rows.append({
                "messages": [{"role": "user", "content": question.question},
                             {"role": "assistant", "content": reply}],
                "source": "",
                "augmentation": "replay",
            })
    return rows
