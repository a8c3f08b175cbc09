"""Structured output: JSON that follows a JSON Schema, from any backend.

Servers get the OpenAI `response_format` (`{"type": "json_schema", ...}`); the local
transformers model gets constrained decoding: before each token is picked, every token that
would break the schema is masked out of the logits, so even the 135M default emits valid JSON.

The mask comes from **xgrammar** (a maintained grammar engine used by vLLM, SGLang and
TensorRT-LLM): its C++ core precomputes, per grammar state, which tokens are always/never
allowed, so the per-token work is a small bitmask fill. The other candidate, lm-format-enforcer,
walks a character-level parser over a token prefix tree in Python for every token. Measured on
the 2 cores with SmolLM2-135M (`bench/structured_output.py`, table in
`bench/results/structured_output.md`): xgrammar added well under a millisecond per token,
lm-format-enforcer several milliseconds and a slower first call; see the table for the numbers.
xgrammar compiles the JSON grammar for a 49k-token vocabulary in under a second, once per
schema per model (cached in the constraint builder).

Whatever the backend, the answer is checked with `jsonschema` before it is returned: a model
stopped by the token limit half-way through an object, or a server that ignored the format, is
a BackendError that says so, never invalid JSON handed on as if it were valid.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from infuse.errors import BackendError, ConfigError

JsonSchema = dict[str, Any]


def check_schema(schema: Any) -> JsonSchema:
    """Return `schema` when it is a usable JSON Schema dict; raise ConfigError naming the problem."""
    if not isinstance(schema, dict):
        raise ConfigError(
            f"response_format must be a JSON Schema dict, got {type(schema).__name__}: "
            'e.g. {"type": "object", "properties": {"name": {"type": "string"}}}.'
        )
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as error:
        raise ConfigError(f"response_format is not a valid JSON Schema: {error.message}.") from error
    return schema


def validate_json(text: str, schema: JsonSchema, *, source: str, finish_reason: str | None) -> Any:
    """Parse `text` and validate it against `schema`; return the value.

    Raises BackendError naming `source` (the model or server URL) when the text is not JSON or
    does not match, with the fix (a larger max_new_tokens when the token limit cut it short).
    """
    from jsonschema import Draft202012Validator

    hint = (
        " The answer hit the token limit before the JSON was complete: raise max_new_tokens."
        if finish_reason == "length"
        else ""
    )
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise BackendError(
            f"{source} answered text that is not JSON ({error.msg} at character {error.pos}): "
            f"{text[:200]!r}.{hint}"
        ) from error
    errors = sorted(Draft202012Validator(schema).iter_errors(value), key=lambda e: list(e.path))
    if errors:
        where = "/".join(str(part) for part in errors[0].path) or "(top level)"
        raise BackendError(
            f"{source} answered JSON that does not match the schema at {where}: "
            f"{errors[0].message}.{hint}"
        )
    return value


def openai_response_format(schema: JsonSchema, name: str = "answer") -> dict[str, Any]:
    """The OpenAI chat-completions `response_format` for `schema` (vLLM, llama.cpp, Ollama too)."""
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}


class SchemaConstraint:
    """One answer's grammar state: masks the logits, follows the picked tokens.

    Made by `ConstraintBuilder.start(schema)`; used once, by one token loop.
    """

    def __init__(self, compiled_grammar, vocab_size: int) -> None:
        import xgrammar

        self._xgrammar = xgrammar
        self._matcher = xgrammar.GrammarMatcher(compiled_grammar)
        self._bitmask = xgrammar.allocate_token_bitmask(1, vocab_size)

    def mask(self, logits) -> None:
        """Set the logits [1, vocab] of every token the schema forbids next to -inf, in place."""
        self._matcher.fill_next_token_bitmask(self._bitmask)
        bitmask = self._bitmask.to(logits.device) if logits.device.type != "cpu" else self._bitmask
        self._xgrammar.apply_token_bitmask_inplace(logits, bitmask)

    def accept(self, token_id: int) -> None:
        """Advance the grammar past `token_id` (one the mask allowed)."""
        if not self._matcher.accept_token(token_id):
            raise BackendError(
                f"Constrained decoding picked token {token_id}, which the JSON grammar rejects."
            )

    def is_finished(self) -> bool:
        """True when the JSON value is complete and nothing more may follow."""
        return self._matcher.is_terminated()


class ConstraintBuilder:
    """Compiles JSON Schemas into grammars for one tokenizer; cached per schema, thread-safe."""

    def __init__(self, tokenizer, vocab_size: int, stop_token_ids: set[int]) -> None:
        try:
            import xgrammar
        except ImportError as error:
            raise ConfigError(
                "Structured output on a local model needs xgrammar: `pip install xgrammar` "
                "(or serve the model with --base-url, where the server constrains the output)."
            ) from error
        info = xgrammar.TokenizerInfo.from_huggingface(
            tokenizer, vocab_size=vocab_size, stop_token_ids=sorted(stop_token_ids)
        )
        self.vocab_size = vocab_size
        self._compiler = xgrammar.GrammarCompiler(info, max_threads=2)
        self._lock = threading.Lock()

    def start(self, schema: JsonSchema) -> SchemaConstraint:
        """A fresh constraint for one answer that must match `schema`."""
        with self._lock:
            compiled = self._compiler.compile_json_schema(
                json.dumps(schema), any_whitespace=False
            )
        return SchemaConstraint(compiled, self.vocab_size)
