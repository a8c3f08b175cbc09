"""A local transformers chat model behind the `ChatModel` interface.

One model object is shared by several answer methods and server threads: generation holds the
model's lock (`LocalChatModel.lock`), so answers are computed one at a time, whole, on the CPU
or GPU that holds the weights. Callers that run the model outside `generate` (CAG prefill) take
the same lock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from infuse.errors import PromptTooLongError, TemplateError
from infuse.llm.base import ChatModel, GenerateOptions, Generation, Message
from infuse.llm.decoding import decode, end_token_ids
from infuse.llm.repetition import DEFAULT_WINDOW


def render_messages(
    tokenizer, messages: list[Message], *, add_generation_prompt: bool = True
) -> str:
    """Render OpenAI-style messages with the tokenizer's own chat template.

    Raises TemplateError when the tokenizer has no chat template.
    """
    if not getattr(tokenizer, "chat_template", None):
        name = getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__
        raise TemplateError(
            f"The tokenizer of '{name}' has no chat template, so chat messages cannot be rendered. "
            "Use an instruction-tuned model, or set one (e.g. "
            "`infuse.data.templates.get_chat_template(tokenizer, 'chatml')`) before generating."
        )
    return tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=add_generation_prompt
    )


def encode_rendered(tokenizer, text: str) -> list[int]:
    """Token ids of already-rendered chat text (the template holds any BOS; add none)."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


class LocalChatModel(ChatModel):
    """A transformers causal LM + tokenizer; greedy by default, sampling when given a temperature."""

    def __init__(
        self,
        model,
        tokenizer,
        *,
        name: str = "local",
        seed: int | None = None,
        repetition_window: int | None = DEFAULT_WINDOW,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.seed = seed
        self.repetition_window = repetition_window
        self.end_ids = end_token_ids(model, tokenizer)
        self.lock = threading.RLock()
        self._constraints = None  # built on the first structured answer

    @property
    def device(self):
        """The device the model's weights sit on."""
        return next(self.model.parameters()).device

    @property
    def context_window(self) -> int | None:
        """The model's context window in tokens (`max_position_embeddings`), when its config says."""
        config = self.model.config
        text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
        return getattr(text_config, "max_position_embeddings", None)

    def new_cache(self):
        """An empty KV cache for this model (transformers' DynamicCache)."""
        from transformers import DynamicCache

        return DynamicCache(config=self.model.config)

    def generate_with(self, messages: list[Message], options: GenerateOptions) -> Generation:
        """`messages` rendered with the chat template, answered from a fresh cache; a
        `response_format` constrains the decoding itself to JSON matching it."""
        prompt_ids = encode_rendered(self.tokenizer, render_messages(self.tokenizer, messages))
        return self.generate_from_ids(prompt_ids, None, **options.keywords())

    def generate_from_ids(
        self,
        input_ids: list[int],
        cache,
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        stop: list[str] | None = None,
        on_token: Callable[[str], None] | None = None,
        cached_tokens: int = 0,
        response_format: dict[str, Any] | None = None,
    ) -> Generation:
        """Generate after `input_ids`, with `cache` already holding `cached_tokens` earlier tokens (CAG).

        `cache` None starts from an empty one. The prompt (cached + new tokens) is checked
        against the context window first (PromptTooLongError); `max_new_tokens` is lowered to
        the room left.
        """
        max_new_tokens = self._room(cached_tokens + len(input_ids), max_new_tokens)
        schema = None
        if response_format is not None:
            from infuse.llm.structured import check_schema

            schema = check_schema(response_format)
        with self.lock:
            generator = None
            if temperature > 0 and self.seed is not None:
                import torch

                generator = torch.Generator(device=self.device).manual_seed(self.seed)
            decoded = decode(
                self.model,
                self.tokenizer,
                input_ids,
                self.new_cache() if cache is None else cache,
                max_new_tokens=max_new_tokens,
                temperature=temperature,
                stop=stop,
                on_token=on_token,
                end_ids=self.end_ids,
                generator=generator,
                repetition_window=self.repetition_window,
                constraint=None if schema is None else self._constraint(schema),
            )
        if schema is not None:
            from infuse.llm.structured import validate_json

            validate_json(
                decoded.text,
                schema,
                source=f"The local model '{self.name}'",
                finish_reason=decoded.finish_reason,
            )
        return Generation(
            text=decoded.text,
            prompt_tokens=cached_tokens + len(input_ids),
            completion_tokens=len(decoded.token_ids),
            cached_tokens=cached_tokens or None,
            time_to_first_token_s=decoded.time_to_first_token_s,
            total_s=decoded.total_s,
            extra={
                "finish_reason": decoded.finish_reason,
                "token_ids": decoded.token_ids,
                **decoded.extra,
            },
        )

    def _room(self, prompt_tokens: int, max_new_tokens: int) -> int:
        """`max_new_tokens`, lowered to what the context window leaves after the prompt."""
        window = self.context_window
        if window is None:
            return max_new_tokens
        if prompt_tokens >= window:
            raise PromptTooLongError(
                f"The prompt is {prompt_tokens} tokens but the model '{self.name}' reads at most "
                f"{window} (its context window), with room for the answer. Shorten the question "
                "or the knowledge given with it (fewer passages, -k), or use a model with a "
                "longer context.",
                prompt_tokens=prompt_tokens,
                context_window=window,
            )
        return max(1, min(max_new_tokens, window - prompt_tokens))

    def _constraint(self, schema):
        from infuse.llm.structured import ConstraintBuilder

        if self._constraints is None:
            head = self.model.get_output_embeddings()
            vocab_size = head.weight.shape[0] if head is not None else self.model.config.vocab_size
            self._constraints = ConstraintBuilder(self.tokenizer, vocab_size, self.end_ids)
        return self._constraints.start(schema)
