"""`AutoMethod` (`infuse-auto`): serve the method the assistant profile names, and when it
declines ("no answer"), ask the runner-up that answers from other evidence, once.

The answer says which method produced it (`Answer.method`), and `facts["fallback_from"]` names
the one that declined. While the winner streams, text that could still be its "no answer"
phrase is held back, so a client never sees a refusal followed by the fallback's answer.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

from infuse.answer import Answer
from infuse.errors import ConfigError
from infuse.methods.profile import AssistantProfile

# Phrases methods answer with when their evidence holds nothing (RAG's is the first).
DECLINE_PHRASES = ("The knowledge base has no answer to this question.", "I don't know")


class _HoldBack:
    """Passes text on once it can no longer be the start of a decline phrase."""

    def __init__(self, on_token: Callable[[str], None] | None) -> None:
        self.on_token = on_token
        self.held = ""
        self.released = False

    def __call__(self, piece: str) -> None:
        if self.on_token is None:
            return
        if self.released:
            self.on_token(piece)
            return
        self.held += piece
        start = self.held.strip().lower()
        if not any(phrase.lower().startswith(start) or start.startswith(phrase.lower())
                   for phrase in DECLINE_PHRASES):
            self.released = True
            self.on_token(self.held)

    def flush(self) -> None:
        if self.on_token is not None and not self.released and self.held:
            self.released = True
            self.on_token(self.held)


class AutoMethod:
    """The profile's winner with one fallback; safe to share between threads like its methods."""

    name = "auto"

    def __init__(self, profile: AssistantProfile, methods: dict[str, Any]) -> None:
        winner = methods.get(profile.winner)
        if winner is None:
            raise ConfigError(
                f"The assistant profile names {profile.winner!r} as the winner, but this server has "
                f"{', '.join(methods) or 'no methods'}. Serve it with the same knowledge base, runs "
                "and model the eval used (the profile's `rebuild` lists them)."
            )
        self.profile = profile
        self.winner = winner
        self.fallback = methods.get(profile.runner_up) if profile.runner_up else None
        self.fallback_name = profile.runner_up if self.fallback is not None else None
        self.facts: dict[str, Any] = {
            "serves": profile.winner,
            "fallback": self.fallback_name,
            "criterion": profile.criterion,
            "verdict": profile.verdict(),
        }

    def answer(
        self,
        question: str,
        *,
        history: list[dict[str, str]] | None = None,
        max_new_tokens: int | None = None,
        on_token: Callable[[str], None] | None = None,
    ) -> Answer:
        """The winner's answer; the fallback's when the winner declined and a fallback exists."""
        held = _HoldBack(on_token) if self.fallback is not None else None
        first = self.winner.answer(
            question, history=history, max_new_tokens=max_new_tokens,
            on_token=held if held is not None else on_token,
        )
        if not first.no_answer or self.fallback is None:
            if held is not None:
                held.flush()
            return self._named(first, self.profile.winner)
        if held is not None and held.released and on_token is not None:
            # The decline was already streamed as text that did not look like one; set it apart.
            on_token("\n\n")
        second = self.fallback.answer(
            question, history=history, max_new_tokens=max_new_tokens, on_token=on_token
        )
        second = self._named(second, self.fallback_name)
        second.facts["fallback_from"] = self.profile.winner
        second.timings["declined_s"] = first.timings.get("total_s", 0.0)
        return second

    def stream(self, question: str, **options: Any) -> Iterator[str | Answer]:
        """Text pieces as they come, then the final Answer."""
        pieces: queue.Queue = queue.Queue()
        outcome: dict[str, Any] = {}

        def work() -> None:
            try:
                outcome["answer"] = self.answer(question, on_token=pieces.put, **options)
            except BaseException as error:  # noqa: BLE001 - re-raised in the caller's thread
                outcome["error"] = error
            finally:
                pieces.put(None)

        threading.Thread(target=work, daemon=True).start()
        while (piece := pieces.get()) is not None:
            yield piece
        if "error" in outcome:
            raise outcome["error"]
        yield outcome["answer"]

    def close(self) -> None:
        """Nothing of its own: the methods it wraps are closed by whoever built them."""

    @staticmethod
    def _named(answer: Answer, name: str) -> Answer:
        answer.facts = dict(answer.facts or {})
        answer.facts["auto"] = True
        answer.method = name
        return answer
