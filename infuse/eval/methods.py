"""The methods eval compares, behind one small seam.

A *method* is any object with a `name` and `answer(question) -> Answer`. It may also have
`setup()` (loading a model, building an index or a cache; timed apart from answering) and a
`facts` dict (numbers the report and the diagnosis read: `training_s`, `run_dir`,
`knowledge_tokens`, `context_window`, `train_chat_template`, `inference_chat_template`).

The standard methods come from `infuse.methods.build_methods`; two adapters let a test or a
caller bring its own:

    ChatModelMethod(name, load=...)     a ChatModel answering alone, loaded on setup()
    FunctionMethod(name, answer=...)    any callable question -> Answer

A method that cannot run is a `SkippedMethod` with the reason in words; the report lists it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from infuse.answer import Answer
from infuse.methods.base import (
    DEFAULT_SYSTEM_PROMPT,
    DOES_NOT_FIT,
    FAILED,
    MISSING,
    ModelMethod,
    SkipMethod,
    SkippedMethod,
)

__all__ = [
    "DEFAULT_SYSTEM_PROMPT",
    "DOES_NOT_FIT",
    "FAILED",
    "MISSING",
    "ChatModelMethod",
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


class ChatModelMethod(ModelMethod):
    """A `ModelMethod` whose model may be loaded in `setup()` (`load=`), so loading is timed
    apart from answering."""

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
        super().__init__(
            name, model, system_prompt=system_prompt, max_new_tokens=max_new_tokens, facts=facts
        )
        self._load = load

    def setup(self) -> None:
        """Load the model (once)."""
        if self.model is None and self._load is not None:
            self.model = self._load()
            self.facts["model"] = getattr(self.model, "name", "")

    def answer(self, question: str, **options: Any) -> Answer:
        """Load the model if needed, then answer (see `ModelMethod.answer`)."""
        self.setup()
        return super().answer(question, **options)


class FunctionMethod:
    """Any callable `question -> Answer` as a method."""

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
