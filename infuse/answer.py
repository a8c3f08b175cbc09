"""`Answer`: what every answer method (base model, RAG, CAG, fine-tuned) returns, so eval can compare them.

    Answer, Citation                 the result types (`to_dict()` for JSON)
    AnswerMethod, AnswerOptions      what every method is: `answer(question, **options)`, `stream`
    stream_answer(answer, question)  text pieces as they are generated, then the final Answer
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Protocol, runtime_checkable


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


@dataclass(frozen=True)
class AnswerOptions:
    """The keywords of one `AnswerMethod.answer` call; None leaves the method's own default."""

    history: Sequence[dict[str, str]] | None = None
    max_new_tokens: int | None = None
    on_token: Callable[[str], None] | None = None
    temperature: float | None = None
    stop: list[str] | None = None

    def keywords(self, **overrides: Any) -> dict[str, Any]:
        """These options as `answer` keywords for a wrapped method, `overrides` applied; those
        that are None are left out (the wrapped method's defaults)."""
        given = {option.name: getattr(self, option.name) for option in fields(self)}
        return {key: value for key, value in {**given, **overrides}.items() if value is not None}

    def generate_keywords(
        self, max_new_tokens: int = 256, temperature: float = 0.0, *, stream: bool = True
    ) -> dict[str, Any]:
        """Keywords for `ChatModel.generate`: these options, the method's defaults where they
        are None; `stream` False leaves `on_token` out (a reply checked before anyone sees it)."""
        return {
            "max_new_tokens": max_new_tokens if self.max_new_tokens is None else self.max_new_tokens,
            "temperature": temperature if self.temperature is None else self.temperature,
            "stop": self.stop,
            "on_token": self.on_token if stream else None,
        }


@runtime_checkable
class AnswerMethod(Protocol):
    """An answer method: opened once, asked many times, safe to share between threads.

    Methods subclass it and implement `answer_with`; `answer` and `stream` are the calls
    everyone makes, `close` releases what the method opened.
    """

    name: str
    facts: dict[str, Any]

    def answer(
        self,
        question: str,
        *,
        history: Sequence[dict[str, str]] | None = None,
        max_new_tokens: int | None = None,
        on_token: Callable[[str], None] | None = None,
        temperature: float | None = None,
        stop: list[str] | None = None,
    ) -> Answer:
        """Answer `question` after the earlier turns in `history` (`{"role", "content"}` dicts).

        `on_token` receives the answer's text as it is generated; `max_new_tokens`,
        `temperature` and `stop` left None keep the method's own settings.
        """
        options = AnswerOptions(history, max_new_tokens, on_token, temperature, stop)
        return self.answer_with(question, options)

    def answer_with(self, question: str, options: AnswerOptions) -> Answer:
        """The method's answer to one `answer` call (what each method implements)."""
        ...

    def stream(self, question: str, **options: Any) -> Iterator[str | Answer]:
        """Like `answer`, as text pieces while they are generated, then the final Answer."""
        return stream_answer(self.answer, question, **options)

    def close(self) -> None:
        """Release what the method opened (nothing, unless it says otherwise)."""


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
