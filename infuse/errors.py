"""infuse's own exceptions: each message names the file/row/setting, what was expected, and the fix.

    InfuseError                 base; the CLI prints its message on one line and exits 1
    ├── DataError               a dataset file or row is unusable (malformed, wrong type, empty)
    │   └── ColumnError         a column named in a prompt/option is missing
    ├── RoleError               a conversation role that no alias maps
    ├── TemplateError           a chat template is missing, unknown or inconsistent
    ├── ConfigError             a setting is invalid (caught before any heavy work starts)
    ├── ModelNotFoundError      a model path or packaged model is missing (never a download)
    ├── PromptTooLongError      a prompt does not fit the model's context window (checked first)
    ├── StoreError              the knowledge store cannot be read/written or its server is down
    ├── CacheError              a CAG cache is stale, missing or does not fit the context
    └── BackendError            an LLM server or other backend answered badly or not at all
"""

from __future__ import annotations


class InfuseError(Exception):
    """Base class: a problem the user can fix, described in plain words."""


class DataError(InfuseError):
    """A dataset file or row cannot be used as it is."""


class ColumnError(DataError, KeyError):
    """A column named in an option does not exist in the dataset."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class RoleError(DataError):
    """A conversation uses a role that none of the aliases maps."""


class TemplateError(InfuseError):
    """A chat template is missing, unknown, or does not match the one a run trained with."""


class ConfigError(InfuseError, ValueError):
    """A setting is invalid; raised before any training or indexing starts."""


class ModelNotFoundError(InfuseError):
    """A model is neither at the given path nor installed as a package."""


class PromptTooLongError(InfuseError):
    """A prompt does not fit the model's context window; found before any generation.

    `prompt_tokens` and `context_window` carry the numbers (None when a server did not say).
    """

    def __init__(
        self, message: str, *, prompt_tokens: int | None = None, context_window: int | None = None
    ) -> None:
        super().__init__(message)
        self.prompt_tokens = prompt_tokens
        self.context_window = context_window


class StoreError(InfuseError):
    """The knowledge store cannot be opened, read or written (or its server is down)."""


class CacheError(InfuseError):
    """A CAG cache is missing, stale, or the knowledge does not fit the model's context."""


class BackendError(InfuseError):
    """A generation backend (local model or OpenAI-compatible server) failed."""


class ContextTooLongError(CacheError):
    """The knowledge (or the question) does not fit the model's context window.

    `knowledge_tokens` and `context_window` carry the numbers, so callers (eval's skip, a
    server's 400) decide without reading the message; `question_tokens` is set when the
    question itself is what does not fit.
    """

    def __init__(
        self,
        message: str,
        *,
        knowledge_tokens: int,
        context_window: int,
        question_tokens: int | None = None,
    ) -> None:
        super().__init__(message)
        self.knowledge_tokens = knowledge_tokens
        self.context_window = context_window
        self.question_tokens = question_tokens
class BusyError(InfuseError):
    """Another process is writing the same run, knowledge base or cache (its lock is held)."""
