"""`Answer`: what every answer method (base model, RAG, CAG, fine-tuned) returns, so eval can compare them.

    Answer, Citation                 the result types (`to_dict()` for JSON)
    stream_answer(answer, question)  text pieces as they are generated, then the final Answer
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
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

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


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
        """JSON-ready form; the text is under "answer"."""
        payload = asdict(self)
        payload["answer"] = payload.pop("text")
        return payload


class StreamClosed(Exception):
    """Raised inside a generation whose stream was closed by its reader: the work stops there."""


def stream_answer(
    answer: Callable[..., Answer], question: str, **options: Any
) -> Iterator[str | Answer]:
    """Call `answer(question, on_token=..., **options)` in a worker thread and yield each text
    piece as it is generated, then the final Answer (always last, always once).

    An error in `answer` is raised here, in the reader's thread. Closing the iterator early
    (a client that went away) stops the generation at its next token, so the model is freed.
    An `on_token` in `options` is called too, before the piece is yielded.
    """
    caller_on_token = options.pop("on_token", None)
    events: queue.Queue[tuple[str, Any]] = queue.Queue()
    closed = threading.Event()

    def on_token(piece: str) -> None:
        if closed.is_set():
            raise StreamClosed("the reader closed the stream")
        if caller_on_token is not None:
            caller_on_token(piece)
        events.put(("piece", piece))

    def work() -> None:
        try:
            events.put(("answer", answer(question, on_token=on_token, **options)))
        except BaseException as error:  # noqa: BLE001 - handed to the reader's thread
            events.put(("error", error))

    threading.Thread(target=work, name="infuse-answer-stream", daemon=True).start()
    try:
        while True:
            kind, value = events.get()
            if kind == "piece":
                yield value
            elif kind == "answer":
                yield value
                return
            else:
                raise value
    finally:
        closed.set()
