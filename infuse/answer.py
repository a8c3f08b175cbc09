"""`Answer`: what every answer method (base model, RAG, CAG, fine-tuned) returns, so eval can compare them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Citation:
    """A passage an answer relied on: `[n]` in the text refers to `number`."""

    number: int
    source: str
    text: str = ""
    score: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class Answer:
    """An answer with its evidence and timings (seconds).

    `timings` holds at least `total_s`; methods add `time_to_first_token_s`, `retrieval_s`, ...
    `facts` holds method-specific numbers (cache tokens, cached tokens reported by a server, ...).
    `no_answer` is True when the method declined because its knowledge had nothing relevant.
    """

    text: str
    method: str
    citations: list[Citation] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)
    no_answer: bool = False

    def to_dict(self) -> dict[str, Any]:
        payload = asdict(self)
        payload["answer"] = payload.pop("text")
        return payload
