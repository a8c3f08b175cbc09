"""`AutoMethod` (`infuse-auto`): serve the method the assistant profile names, and when it
declines ("no answer"), ask the runner-up that answers from other evidence, once.

The answer says which method produced it (`Answer.method`), and `facts["fallback_from"]` names
the one that declined. While the winner streams, text that could still be its "no answer"
phrase is held back, so a client never sees a refusal followed by the fallback's answer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from infuse.answer import Answer, AnswerMethod, AnswerOptions
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


class AutoMethod(AnswerMethod):
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

    def answer_with(self, question: str, options: AnswerOptions) -> Answer:
        """The winner's answer; the fallback's when the winner declined and a fallback exists."""
        on_token = options.on_token
        held = _HoldBack(on_token) if self.fallback is not None else None
        first = self.winner.answer(
            question, **options.keywords(on_token=held if held is not None else on_token)
        )
        if not first.no_answer or self.fallback is None:
            if held is not None:
                held.flush()
            return self._named(first, self.profile.winner)
        if held is not None and held.released and on_token is not None:
            # The decline was already streamed as text that did not look like one; set it apart.
            on_token("\n\n")
        second = self._named(self.fallback.answer(question, **options.keywords()), self.fallback_name)
        second.facts["fallback_from"] = self.profile.winner
        second.timings["declined_s"] = first.timings.get("total_s", 0.0)
        return second

    def close(self) -> None:
        """Nothing of its own: the methods it wraps are closed by whoever built them."""

    @staticmethod
    def _named(answer: Answer, name: str) -> Answer:
        answer.facts = dict(answer.facts or {})
        answer.facts["auto"] = True
        answer.method = name
        return answer
