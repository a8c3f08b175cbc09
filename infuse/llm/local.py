"""A local transformers chat model behind the `ChatModel` interface."""

from __future__ import annotations

from collections.abc import Callable

from infuse.errors import TemplateError
from infuse.llm.base import Generation, Message
from infuse.llm.decoding import decode, end_token_ids


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


class LocalChatModel:
    """A transformers causal LM + tokenizer; greedy by default, sampling when given a temperature."""

    def __init__(self, model, tokenizer, *, name: str = "local", seed: int | None = None) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.seed = seed
        self.end_ids = end_token_ids(model, tokenizer)

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

    def generate(
        self,
        messages: list[Message],
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        stop: list[str] | None = None,
        on_token: Callable[[str], None] | None = None,
    ) -> Generation:
        """Answer `messages` (rendered with the chat template) from a fresh cache."""
        prompt_ids = encode_rendered(self.tokenizer, render_messages(self.tokenizer, messages))
        return self.generate_from_ids(
            prompt_ids,
            self.new_cache(),
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            stop=stop,
            on_token=on_token,
        )

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
    ) -> Generation:
        """Generate after `input_ids`, with `cache` already holding `cached_tokens` earlier tokens (CAG)."""
        generator = None
        if temperature > 0 and self.seed is not None:
            import torch

            generator = torch.Generator(device=self.device).manual_seed(self.seed)
        decoded = decode(
            self.model,
            self.tokenizer,
            input_ids,
            cache,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            stop=stop,
            on_token=on_token,
            end_ids=self.end_ids,
            generator=generator,
        )
        return Generation(
            text=decoded.text,
            prompt_tokens=cached_tokens + len(input_ids),
            completion_tokens=len(decoded.token_ids),
            cached_tokens=cached_tokens or None,
            time_to_first_token_s=decoded.time_to_first_token_s,
            total_s=decoded.total_s,
            extra={"finish_reason": decoded.finish_reason, "token_ids": decoded.token_ids},
        )
