"""What every answer method is, and the two small methods that are not sessions of their own.

    AnswerMethod        the protocol: name, facts, answer(question, history=...), stream(...), close()
    ModelMethod         a chat model answering alone (the base model, or base + LoRA adapter)
    LazyMethod          a method opened on first use (`setup()`), or a skip with its reason
    SkippedMethod       a method that was asked for but cannot run here, and why

`AnswerMethod` lives in `infuse.answer` (below rag and cag); sessions (`infuse.rag.RagSession`,
`infuse.methods.cag.CagMethod`) are AnswerMethods too.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

from infuse.answer import Answer, AnswerMethod, AnswerOptions
from infuse.conversation import chat_messages

DEFAULT_SYSTEM_PROMPT = (
    "You are a helpful assistant. Answer the question in one short sentence. "
    "If you do not know the answer, say \"I don't know\"."
)

# Why a method was skipped; eval's diagnosis reads `DOES_NOT_FIT`.
MISSING = "missing"  # the code or the input it needs is not there
DOES_NOT_FIT = "does_not_fit"  # the knowledge is longer than the model's context (CAG)
FAILED = "failed"  # opening it raised an error


@dataclass
class SkippedMethod:
    """A method that was asked for but cannot run here, and why (in plain words)."""

    name: str
    reason: str
    code: str = MISSING
    facts: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"name": self.name, "reason": self.reason, "code": self.code, "facts": dict(self.facts)}


class SkipMethod(Exception):
    """Raised when opening a method finds it cannot run here; carries the SkippedMethod."""

    def __init__(self, skip: SkippedMethod) -> None:
        super().__init__(skip.reason)
        self.skip = skip


@dataclass(eq=False)
class ModelMethod(AnswerMethod):
    """A chat model answering from what it knows (the base model, or base + LoRA adapter).

    The model object may be shared with other methods; a local model serialises its own
    generation, so this is safe to call from several threads. `facts` start with the model's name.
    """

    name: str
    model: Any
    _: KW_ONLY
    system_prompt: str | None = DEFAULT_SYSTEM_PROMPT
    max_new_tokens: int = 256
    temperature: float = 0.0
    facts: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.facts = {"model": getattr(self.model, "name", ""), **self.facts}

    def messages(
        self, question: str, history: Sequence[dict[str, str]] | None = None
    ) -> list[dict[str, str]]:
        """The chat messages sent for one question: system prompt, earlier turns, the question.

        A system turn in `history` (a client of the OpenAI API sending its own instructions)
        takes the place of the method's system prompt: two instructions confuse a small model.
        """
        own = any(isinstance(turn, dict) and turn.get("role") == "system" for turn in history or ())
        return chat_messages(question, history, None if own else self.system_prompt)

    def answer_with(self, question: str, options: AnswerOptions) -> Answer:
        """Generate an answer; returns its text with time to first token and total time."""
        messages = self.messages(question, options.history)
        started = time.perf_counter()
        first: list[float] = []

        def timed_on_token(piece: str) -> None:
            if not first:
                first.append(time.perf_counter() - started)
            if options.on_token is not None:
                options.on_token(piece)

        keywords = options.generate_keywords(self.max_new_tokens, self.temperature)
        generation = self.model.generate(messages, **{**keywords, "on_token": timed_on_token})
        timings = {"total_s": time.perf_counter() - started}
        ttft = generation.time_to_first_token_s
        if ttft is None and first:
            ttft = first[0]
        if ttft is not None:
            timings["time_to_first_token_s"] = ttft
        facts = {
            key: value
            for key, value in (
                ("model", getattr(self.model, "name", "")),
                ("prompt_tokens", generation.prompt_tokens),
                ("completion_tokens", generation.completion_tokens),
            )
            if value is not None
        }
        return Answer(text=generation.text.strip(), method=self.name, timings=timings, facts=facts)


class LazyMethod(AnswerMethod):
    """A method opened on first use: `setup()` calls `open()` once (thread-safe) and keeps the
    method it returns; `open()` raises SkipMethod when the method cannot run here.

    `facts` are known before opening and merged with the opened method's facts.
    """

    def __init__(
        self,
        name: str,
        open: Callable[[], Any],
        *,
        facts: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self._open = open
        self._lock = threading.Lock()
        self.method: Any = None
        self.facts: dict[str, Any] = dict(facts or {})

    def setup(self) -> Any:
        """Open the method now (once); returns it. Raises SkipMethod when it cannot run."""
        if self.method is None:
            with self._lock:
                if self.method is None:
                    method = self._open()
                    self.facts = {**getattr(method, "facts", {}), **self.facts}
                    method.facts = self.facts  # one dict: later facts show up on both
                    self.method = method
        return self.method

    def answer(self, question: str, **options: Any) -> Answer:
        """Open the method if needed, then answer; the Answer carries this method's name."""
        result = self.setup().answer(question, **options)
        result.method = self.name
        return result

    def close(self) -> None:
        """Close the opened method (if it was opened)."""
        if self.method is not None:
            self.method.close()
