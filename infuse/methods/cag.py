"""`CagMethod`: a CAG session (local KV cache, or a server's prefix cache) as an answer method.

The session does the work (`infuse.cag`); this adds the method's name, its facts (knowledge
tokens, context window) and its default answer length.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from infuse.answer import Answer, stream_answer


class CagMethod:
    """`session` is a `CagSession` (its cache is locked per question, so threads may share it)
    or a `ServerCagSession`."""

    def __init__(
        self,
        session: Any,
        *,
        name: str = "cag",
        max_new_tokens: int = 256,
        facts: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.session = session
        self.max_new_tokens = max_new_tokens
        chat = getattr(session, "chat", None)
        self.facts: dict[str, Any] = {"model": getattr(chat, "name", "")}
        if hasattr(session, "knowledge_tokens"):
            self.facts["knowledge_tokens"] = session.knowledge_tokens
            self.facts["context_window"] = getattr(chat, "context_window", None)
        self.facts.update(facts or {})

    def answer(
        self,
        question: str,
        *,
        history: Sequence[dict[str, str]] | None = None,
        max_new_tokens: int | None = None,
        on_token: Callable[[str], None] | None = None,
        temperature: float | None = None,
    ) -> Answer:
        """Answer from the cached knowledge (see `CagSession.answer`)."""
        result = self.session.answer(
            question,
            history=history,
            max_new_tokens=self.max_new_tokens if max_new_tokens is None else max_new_tokens,
            on_token=on_token,
            temperature=temperature,
        )
        result.method = self.name
        return result

    def stream(self, question: str, **options: Any) -> Iterator[str | Answer]:
        """Like `answer`, as text pieces while they are generated, then the final Answer."""
        return stream_answer(self.answer, question, **options)

    def close(self) -> None:
        """Nothing to release: the cache goes with the session, the model may be shared."""
