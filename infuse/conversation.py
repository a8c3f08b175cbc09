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


# The prompt a question over passages is asked with (RAG, LoRA+RAG, CAG's grounding and the
# RAFT training rows that teach an adapter to read them). Small models (SmolLM2-135M) follow a
# short instruction over a few plain passages; numbered `[n] (source: ...)` headers and long
# rules get echoed back (shared/MODELS.md, last section).
PASSAGES_PROMPT = (
    "Answer the question with a short phrase from the text below. Reply in one short sentence."
)


def passages_messages(
    question: str,
    passages: Sequence[str],
    history: Sequence[dict[str, Any]] | None = None,
    system_prompt: str = PASSAGES_PROMPT,
) -> list[dict[str, str]]:
    """The instruction with the passages as plain blocks (blank lines between them) in the
    system turn, the earlier turns, then the question alone as the last user turn."""
    blocks = "\n\n".join(text.strip() for text in passages if text.strip())
    return chat_messages(question, history, f"{system_prompt}\n\n{blocks}")
