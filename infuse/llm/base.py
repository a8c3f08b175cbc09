"""One generate() interface over a local transformers model and any OpenAI-compatible server.

Backends implement `ChatModel.generate`; callers pass OpenAI-style messages
(`[{"role": ..., "content": ...}]`) and get a `Generation` back. Streaming is a callback
(`on_token`) so the same call serves the CLI (print as it comes) and eval (just time it).

Every backend stops an answer that starts repeating itself (`infuse.llm.repetition`;
`finish_reason` "repetition"), checks the prompt against the context window before generating
(`PromptTooLongError`), and with `response_format` (a JSON Schema dict) returns text that is
JSON valid against it (`infuse.llm.structured`) or raises BackendError.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, Protocol, runtime_checkable

Message = dict[str, str]


@dataclass
class Generation:
    """What a backend produced, with the numbers eval reports."""

    text: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None  # reported by servers with a prefix cache, when they say
    time_to_first_token_s: float | None = None
    total_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GenerateOptions:
    """The keywords of one `ChatModel.generate` call, as a backend receives them."""

    max_new_tokens: int = 256
    temperature: float = 0.0
    stop: list[str] | None = None
    on_token: Callable[[str], None] | None = None
    response_format: dict[str, Any] | None = None

    def keywords(self) -> dict[str, Any]:
        """The options as `generate` keywords (to pass on to a lower call)."""
        return {option.name: getattr(self, option.name) for option in fields(self)}


@runtime_checkable
class ChatModel(Protocol):
    """A chat model: local transformers, llama.cpp, or a remote OpenAI-compatible server.

    Backends subclass it and implement `generate_with`; `generate` is the call everyone makes.
    """

    name: str

    def generate(
        self,
        messages: list[Message],
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        stop: list[str] | None = None,
        on_token: Callable[[str], None] | None = None,
        response_format: dict[str, Any] | None = None,
    ) -> Generation:
        """Answer OpenAI-style `messages`; greedy at `temperature` 0, sampled above.

        `on_token` receives the answer's text as it comes; the answer ends at a `stop` string
        (left out), after `max_new_tokens`, or where it starts repeating itself. With
        `response_format` (a JSON Schema dict) the text is JSON valid against it.
        Raises PromptTooLongError when the prompt does not fit the context window (before
        generating), BackendError when the backend fails or its JSON does not validate.
        """
        options = GenerateOptions(max_new_tokens, temperature, stop, on_token, response_format)
        return self.generate_with(messages, options)

    def generate_with(self, messages: list[Message], options: GenerateOptions) -> Generation:
        """The backend's answer to one `generate` call (what each backend implements)."""
        ...
