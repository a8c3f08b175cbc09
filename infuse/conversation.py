"""A question inside a conversation: the earlier turns, checked, and the chat messages.

    check_history(history) -> list[dict]            earlier {"role", "content"} turns, validated
    chat_messages(question, history, system) -> messages

Every answer method (base model, adapter, RAG, CAG) takes `history` the same way; the check
lives here once so a server and eval see the same errors. (Whether a prompt fits the context
window is the model's check, before it generates.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from infuse.errors import ConfigError

ROLES = ("system", "user", "assistant")


def check_history(history: Sequence[dict[str, Any]] | None) -> list[dict[str, str]]:
    """The earlier turns as `{"role", "content"}` dicts (user/assistant/system, text content).

    Raises ConfigError naming the first bad turn.
    """
    turns: list[dict[str, str]] = []
    for index, turn in enumerate(history or ()):
        role = turn.get("role") if isinstance(turn, dict) else None
        content = turn.get("content") if isinstance(turn, dict) else None
        if role not in ROLES or not isinstance(content, str):
            raise ConfigError(
                f"history turn {index} is {turn!r}: each earlier turn must be a "
                f'{{"role": "user"|"assistant"|"system", "content": "text"}} dict.'
            )
        turns.append({"role": role, "content": content})
    return turns


def chat_messages(
    question: str,
    history: Sequence[dict[str, Any]] | None = None,
    system_prompt: str | None = None,
) -> list[dict[str, str]]:
    """System prompt (when given), the earlier turns, then the question as the last user turn."""
    turns = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return [*turns, *check_history(history), {"role": "user", "content": question}]
