"""The methods eval compares, behind one small seam.

A *method* is any object with a `name` and `answer(question) -> Answer`. It may also have
`setup()` (loading a model, building an index or a cache; timed apart from answering) and a
`facts` dict (numbers the report and the diagnosis read: `training_s`, `run_dir`,
`knowledge_tokens`, `context_window`, `train_chat_template`, `inference_chat_template`).

Two adapters cover every method:

    ChatModelMethod(name, load=...)     a ChatModel answering alone (base model, LoRA adapter)
    FunctionMethod(name, answer=...)    any callable question -> Answer (RAG, CAG, adapter+RAG)

A method that cannot run is a `SkippedMethod` with the reason in words; the report lists it.
The factories in `infuse.eval.builders` build the standard five from CLI options.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from infuse.answer import Answer

DEFAULT_SYSTEM_PROMPT = (
    "You are a helpful assistant. Answer the question in one short sentence. "
    "If you do not know the answer, say \"I don't know\"."
)

# Why a method was skipped; the diagnosis reads `DOES_NOT_FIT`.
MISSING = "missing"  # the code or the input it needs is not there
DOES_NOT_FIT = "does_not_fit"  # the knowledge is longer than the model's context (CAG)
FAILED = "failed"  # setup raised an error


@runtime_checkable
class Method(Protocol):
    """What eval needs of a method: a name and one answer per question."""

    name: str

    def answer(self, question: str) -> Answer: ...


@dataclass
class SkippedMethod:
    """A method that was asked for but cannot run here, and why (in plain words)."""

    name: str
    reason: str
    code: str = MISSING
    facts: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "reason": self.reason, "code": self.code, "facts": dict(self.facts)}


class SkipMethod(Exception):
    """Raised by a method's `setup()` when it cannot run here; the runner records `skip`."""

    def __init__(self, skip: SkippedMethod) -> None:
        super().__init__(skip.reason)
        self.skip = skip


class ChatModelMethod:
    """A chat model answering from what it knows (the base model, or base + LoRA adapter).

    `load` is called once in `setup()` so model loading is timed apart from answering.
    Time to first token is measured through the streaming callback when the backend does
    not report it itself.
    """

    def __init__(
        self,
        name: str,
        *,
        model=None,
        load: Callable[[], Any] | None = None,
        system_prompt: str | None = DEFAULT_SYSTEM_PROMPT,
        max_new_tokens: int = 64,
        facts: dict[str, Any] | None = None,
    ) -> None:
        if model is None and load is None:
            raise ValueError("ChatModelMethod needs a model or a load() function.")
        self.name = name
        self.model = model
        self._load = load
        self.system_prompt = system_prompt
        self.max_new_tokens = max_new_tokens
        self.facts: dict[str, Any] = dict(facts or {})

    def setup(self) -> None:
        """Load the model (once)."""
        if self.model is None and self._load is not None:
            self.model = self._load()

    def messages(self, question: str) -> list[dict[str, str]]:
        """The chat messages sent for one question."""
        turns = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return [*turns, {"role": "user", "content": question}]

    def answer(self, question: str) -> Answer:
        """Generate greedily; return the text with time to first token and total time."""
        self.setup()
        started = time.perf_counter()
        first: list[float] = []

        def on_token(_piece: str) -> None:
            if not first:
                first.append(time.perf_counter() - started)

        generation = self.model.generate(
            self.messages(question),
            max_new_tokens=self.max_new_tokens,
            temperature=0.0,
            on_token=on_token,
        )
        total = time.perf_counter() - started
        timings = {"total_s": total}
        ttft = generation.time_to_first_token_s
        if ttft is None and first:
            ttft = first[0]
        if ttft is not None:
            timings["time_to_first_token_s"] = ttft
        facts = {k: v for k, v in (("prompt_tokens", generation.prompt_tokens),
                                   ("completion_tokens", generation.completion_tokens)) if v is not None}
        return Answer(text=generation.text.strip(), method=self.name, timings=timings, facts=facts)


class FunctionMethod:
    """Any callable `question -> Answer` as a method (how RAG, CAG and adapter+RAG plug in)."""

    def __init__(
        self,
        name: str,
        answer: Callable[[str], Answer],
        *,
        setup: Callable[[], None] | None = None,
        facts: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self._answer = answer
        self._setup = setup
        self._ready = False
        self.facts: dict[str, Any] = dict(facts or {})

    def setup(self) -> None:
        """Run the setup callable once (build an index, load a cache...)."""
        if not self._ready and self._setup is not None:
            self._setup()
        self._ready = True

    def answer(self, question: str) -> Answer:
        """Call the wrapped function; the Answer's method name is set to this method's name."""
        self.setup()
        result = self._answer(question)
        if not isinstance(result, Answer):
            raise TypeError(f"Method '{self.name}' returned {type(result).__name__}, not an Answer.")
        result.method = self.name
        return result


def check_context_fit(
    name: str, knowledge_tokens: int, context_window: int, *, reserve_tokens: int = 512
) -> SkippedMethod | None:
    """A DOES_NOT_FIT skip when knowledge plus room for question and answer exceeds the window."""
    if knowledge_tokens + reserve_tokens <= context_window:
        return None
    return SkippedMethod(
        name=name,
        code=DOES_NOT_FIT,
        reason=(
            f"the knowledge is {knowledge_tokens:,} tokens; with {reserve_tokens} tokens for the "
            f"question and answer it needs {knowledge_tokens + reserve_tokens:,}, but the model's "
            f"context window is {context_window:,} tokens"
        ),
        facts={
            "knowledge_tokens": knowledge_tokens,
            "context_window": context_window,
            "reserve_tokens": reserve_tokens,
        },
    )
