"""Rows whose answer is missing: found once, then named by inspect and dropped by train and convert.

A null answer cell must never become a training target (it would teach the literal text
"None"), and an empty one teaches the model to say nothing. A conversation is unanswered when
it has no assistant turn or any of its assistant turns is empty or whitespace.
"""

from __future__ import annotations

from infuse.errors import DataError


def unanswered_rows(conversations: list[list[dict[str, str]]]) -> list[int]:
    """Indexes of conversations with no assistant turn or an empty (null, blank) one."""
    rows = []
    for row, convo in enumerate(conversations):
        answers = [turn.get("content") for turn in convo if turn.get("role") == "assistant"]
        if not answers or any(not isinstance(text, str) or not text.strip() for text in answers):
            rows.append(row)
    return rows


def drop_unanswered(
    conversations: list[list[dict[str, str]]], *, source: str
) -> tuple[list[list[dict[str, str]]], list[int]]:
    """The conversations that have answers, and the rows left out.

    Raises DataError naming `source` when no row has an answer (nothing could be learned).
    """
    dropped = unanswered_rows(conversations)
    if dropped and len(dropped) == len(conversations):
        raise DataError(
            f"{source}: every one of the {len(conversations)} rows has an empty, null or missing "
            "answer, so there is nothing to learn. Check the answer column (--output-column) or "
            "the role mapping (--role-alias NAME=assistant)."
        )
    if not dropped:
        return conversations, []
    skip = set(dropped)
    return [convo for row, convo in enumerate(conversations) if row not in skip], dropped


def describe_dropped(dropped: list[int], total: int) -> str:
    """'3 of 40 rows (rows 2, 7, 9) ...' for a warning."""
    shown = ", ".join(str(row) for row in dropped[:5]) + (", ..." if len(dropped) > 5 else "")
    return (f"{len(dropped)} of {total} rows have an empty or null answer and were left out "
            f"(rows {shown}). Fill in their answers to use them.")
