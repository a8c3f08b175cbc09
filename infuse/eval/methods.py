"""The methods eval compares, behind one small seam.

A *method* is any object with a `name` and `answer(question) -> Answer`. It may also have
`setup()` (loading a model, building an index or a cache; timed apart from answering) and a
`facts` dict (numbers the report and the diagnosis read: `training_s`, `run_dir`,
`knowledge_tokens`, `context_window`, `train_chat_template`, `inference_chat_template`).

The standard methods come from `infuse.methods.build_methods`; a caller brings its own as
any such object (`evaluate(extra_methods=[...])`), for instance:

    FunctionMethod(name, function)          any callable question -> Answer
    LazyMethod(name, lambda: ModelMethod(name, load()))   a chat model loaded on setup()

A method that cannot run is a `SkippedMethod` with the reason in words; the report lists it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, Protocol, runtime_checkable

from infuse.answer import Answer
from infuse.methods.base import (
    DEFAULT_SYSTEM_PROMPT,
    DOES_NOT_FIT,
    FAILED,
    MISSING,
    SkipMethod,
    SkippedMethod,
)

__all__ = [
    "DEFAULT_SYSTEM_PROMPT",
    "DOES_NOT_FIT",
    "FAILED",
    "MISSING",
    "FunctionMethod",
    "Method",
    "SkipMethod",
    "SkippedMethod",
]


@runtime_checkable
class Method(Protocol):
    """What eval needs of a method: a name and one answer per question."""

    name: str

    def answer(self, question: str) -> Answer: ...


@dataclass(eq=False)
class FunctionMethod:
    """Any callable `question -> Answer` as a method (your own pipeline beside infuse's);
    `prepare`, when given, runs once in `setup()`, before the first question (timed apart)."""

    name: str
    function: Callable[[str], Answer]
    _: KW_ONLY
    prepare: Callable[[], None] | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    _ready: bool = field(default=False, init=False, repr=False)

    def setup(self) -> None:
        """Run the setup callable once (build an index, load a cache...)."""
        if not self._ready and self.prepare is not None:
            self.prepare()
        self._ready = True

    def answer(self, question: str) -> Answer:
        """Call the wrapped function; the Answer's method name is set to this method's name."""
        self.setup()
        result = self.function(question)
        if not isinstance(result, Answer):
            raise TypeError(f"Method '{self.name}' returned {type(result).__name__}, not an Answer.")
        result.method = self.name
        return result
