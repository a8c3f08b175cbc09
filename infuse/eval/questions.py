"""Eval question sets: one JSONL row per question with a short reference answer.

Accepted rows (the first match wins):

    {"question": ..., "answer": ..., "aliases": [...], "source": "file.md", "id": ..., "tags": [...]}
    {"question": ..., "answer": null}  or  {"question": ..., "unanswerable": true}
                                        (the knowledge does not hold the answer: the right reply
                                         is to decline, and answering anyway is a hallucination)
    {"instruction": ..., "input": ..., "output": ...}               (Alpaca)
    {"messages": [{"role": "user", ...}, {"role": "assistant", ...}]} (last user/assistant turn)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infuse.errors import DataError


@dataclass
class EvalQuestion:
    """One question with its reference answer(s) and, when known, the document it comes from."""

    id: str
    question: str
    answer: str | None  # None: unanswerable from the knowledge (declining is right)
    aliases: list[str] = field(default_factory=list)
    source: str | None = None
    tags: list[str] = field(default_factory=list)

    @property
    def answerable(self) -> bool:
        """False when the knowledge does not hold the answer (the right reply declines)."""
        return self.answer is not None

    @property
    def references(self) -> list[str]:
        """The reference answer followed by its accepted aliases (empty when unanswerable)."""
        return [self.answer, *self.aliases] if self.answer is not None else []

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "question": self.question,
            "answer": self.answer,
            "aliases": list(self.aliases),
            "source": self.source,
            "tags": list(self.tags),
        }


def _from_messages(messages: Any, where: str) -> tuple[str, str]:
    if not isinstance(messages, list):
        raise DataError(f"{where}: 'messages' must be a list of {{role, content}} turns.")
    user = assistant = None
    for turn in messages:
        if not isinstance(turn, dict):
            raise DataError(f"{where}: every turn in 'messages' must be an object.")
        if turn.get("role") == "user":
            user, assistant = turn.get("content"), None
        elif turn.get("role") == "assistant" and user is not None:
            assistant = turn.get("content")
    if not user or not assistant:
        raise DataError(f"{where}: 'messages' needs a user turn followed by an assistant turn.")
    return str(user), str(assistant)


def question_from_row(row: dict[str, Any], where: str, default_id: str) -> EvalQuestion:
    """Turn one parsed row into an EvalQuestion; raise DataError naming `where` when unusable."""
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}.")
    unanswerable = row.get("unanswerable", False)
    if not isinstance(unanswerable, bool):
        raise DataError(f"{where}: 'unanswerable' must be true or false, not {unanswerable!r}.")
    if "question" in row or "answer" in row:
        question, answer = row.get("question"), row.get("answer")
        unanswerable = unanswerable or ("answer" in row and answer is None)
    elif "instruction" in row:
        question = row.get("instruction")
        if row.get("input"):
            question = f"{question}\n\n{row['input']}"
        answer = row.get("output")
    elif "messages" in row:
        question, answer = _from_messages(row["messages"], where)
    else:
        raise DataError(
            f"{where}: no question found. Give 'question' and 'answer' fields "
            f"(or Alpaca 'instruction'/'output', or 'messages'); the row has {sorted(row)}."
        )
    if not isinstance(question, str) or not question.strip():
        raise DataError(f"{where}: 'question' is empty or not text.")
    if unanswerable:
        if answer is not None and str(answer).strip():
            raise DataError(
                f"{where}: marked unanswerable but has the answer {answer!r}; remove one of the two."
            )
        answer = None
    elif not isinstance(answer, (str, int, float)) or not str(answer).strip():
        raise DataError(
            f"{where}: the reference answer is empty. Give one, or mark a question the knowledge "
            'cannot answer with "answer": null.'
        )
    aliases = row.get("aliases") or []
    tags = row.get("tags") or []
    if not isinstance(aliases, list) or not isinstance(tags, list):
        raise DataError(f"{where}: 'aliases' and 'tags' must be lists of strings.")
    return EvalQuestion(
        id=str(row.get("id") or default_id),
        question=question.strip(),
        answer=None if answer is None else str(answer).strip(),
        aliases=[str(a) for a in aliases],
        source=str(row["source"]) if row.get("source") else None,
        tags=[str(t) for t in tags],
    )


def load_questions(
    path: str | Path, *, limit: int | None = None, tag: str | None = None
) -> list[EvalQuestion]:
    """Read a question set (JSONL, or a JSON list); keep rows tagged `tag`, then the first `limit`.

    Raises DataError naming the file and line for malformed rows, duplicate ids, or an empty set.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"Question file {path} does not exist.")
    rows: list[tuple[str, Any]] = []
    if path.suffix == ".json":
        text = path.read_text(encoding="utf-8")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise DataError(f"{path}: not valid JSON ({error.msg}, line {error.lineno}).") from None
        if not isinstance(data, list):
            raise DataError(f"{path}: expected a JSON list of question objects.")
        rows = [(f"{path} item {i + 1}", row) for i, row in enumerate(data)]
    else:
        from infuse.files import read_jsonl

        rows = [(f"{path}, line {number}", row) for number, row in read_jsonl(path, objects=False)]
    questions: list[EvalQuestion] = []
    seen: dict[str, str] = {}
    for index, (where, row) in enumerate(rows):
        item = question_from_row(row, where, default_id=f"q{index + 1:03d}")
        if item.id in seen:
            raise DataError(f"{where}: id '{item.id}' is used again (first at {seen[item.id]}).")
        seen[item.id] = where
        questions.append(item)
    if tag is not None:
        questions = [q for q in questions if tag in q.tags]
    if limit is not None:
        questions = questions[: max(limit, 0)]
    if not questions:
        which = f" tagged '{tag}'" if tag else ""
        fix = (f" Tag some rows \"tags\": [\"{tag}\"], or evaluate every question (leave out "
               "--subset; in quickstart --all-questions)." if tag else "")
        raise DataError(f"{path}: no questions{which} to evaluate.{fix}")
    return questions
