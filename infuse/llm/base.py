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
from dataclasses import dataclass, field
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


@runtime_checkable
class ChatModel(Protocol):
    """A chat model: local transformers or a remote OpenAI-compatible server."""

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
    ) -> Generation: ...
