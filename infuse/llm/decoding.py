"""The token loop: prefill a prompt into a KV cache, then pick one token at a time.

Written out by hand (not `model.generate`) because CAG needs to start from a cache that
already holds the knowledge, and because the loop is where time to first token, stop
strings and streaming happen; one screen of code a person can follow.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from infuse.llm.repetition import DEFAULT_WINDOW, RepetitionGuard


@dataclass
class Decoded:
    """What the loop produced: the new token ids, their text, and when the first one came."""

    token_ids: list[int]
    text: str
    finish_reason: str  # "stop" (end token or stop string) or "length"
    time_to_first_token_s: float
    total_s: float
    extra: dict[str, Any] = field(default_factory=dict)


def forward_kwargs(model, cache) -> dict[str, Any]:
    """The keyword arguments that hand `cache` to `model.forward`, whatever this transformers calls it.

    transformers 5.24 names it `cache` (`past_key_values` is deprecated); older 5.x releases
    (the GPU machine has 5.17) only know `past_key_values`. `logits_to_keep=1` is added where the
    model takes it, so a long prefill computes logits for its last position only.
    """
    base = (
        model.get_base_model() if hasattr(model, "get_base_model") else model
    )  # peft passes kwargs on
    names = _forward_parameters(type(base))
    kwargs: dict[str, Any] = {"use_cache": True}
    kwargs["cache" if "cache" in names else "past_key_values"] = cache
    if "logits_to_keep" in names:
        kwargs["logits_to_keep"] = 1
    return kwargs


_PARAMETERS: dict[type, frozenset[str]] = {}


def _forward_parameters(model_class: type) -> frozenset[str]:
    if model_class not in _PARAMETERS:
        _PARAMETERS[model_class] = frozenset(inspect.signature(model_class.forward).parameters)
    return _PARAMETERS[model_class]


def end_token_ids(model, tokenizer) -> set[int]:
    """Token ids that end an answer: the tokenizer's eos plus the model's generation config's."""
    ids: set[int] = set()
    candidates: list[Any] = [tokenizer.eos_token_id]
    generation_config = getattr(model, "generation_config", None)
    if generation_config is not None:
        candidates.append(generation_config.eos_token_id)
    for candidate in candidates:
        if isinstance(candidate, int):
            ids.add(candidate)
        elif isinstance(candidate, (list, tuple)):
            ids.update(int(value) for value in candidate)
    return ids


def prefill(model, input_ids: Sequence[int], cache):
    """Run `input_ids` through the model, appending their keys/values to `cache`; return last logits."""
    import torch

    device = next(model.parameters()).device
    ids = torch.tensor([list(input_ids)], dtype=torch.long, device=device)
    with torch.inference_mode():
        output = model(input_ids=ids, **forward_kwargs(model, cache))
    return output.logits[:, -1, :]


class CacheStepper:
    """The plain token loop's two moves on any transformers cache: prefill ids, feed one token."""

    def __init__(self, model, cache) -> None:
        self.model = model
        self.cache = cache

    def prefill(self, input_ids: Sequence[int]):
        """Append `input_ids` to the cache; return the last position's logits [1, vocab]."""
        return prefill(self.model, input_ids, self.cache)

    def step(self, token_id: int):
        """Append one token; return its logits [1, vocab]."""
        import torch

        device = next(self.model.parameters()).device
        step_ids = torch.tensor([[token_id]], dtype=torch.long, device=device)
        with torch.inference_mode():
            output = self.model(input_ids=step_ids, **forward_kwargs(self.model, self.cache))
        return output.logits[:, -1, :]


def decode(
    model,
    tokenizer,
    input_ids: Sequence[int],
    cache,
    *,
    max_new_tokens: int = 256,
    temperature: float = 0.0,
    stop: Sequence[str] | None = None,
    on_token: Callable[[str], None] | None = None,
    end_ids: set[int] | None = None,
    generator=None,
    repetition_window: int | None = DEFAULT_WINDOW,
    constraint=None,
) -> Decoded:
    """Generate after `input_ids`, whose prefix may already sit in `cache` (only the rest is fed).

    `input_ids` are the tokens not yet in the cache. Greedy when `temperature` is 0, else
    sampling from softmax(logits / temperature). Text is streamed to `on_token` as it becomes
    final (held back while it could still turn into a stop string or be cut as a repeat).
    Stops when the answer repeats itself (`infuse.llm.repetition`; `repetition_window=None`
    turns that off). `constraint` (`infuse.llm.structured.SchemaConstraint`) masks the logits
    before each pick. Returns `Decoded`.
    """
    return decode_steps(
        CacheStepper(model, cache),
        tokenizer,
        input_ids,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        stop=stop,
        on_token=on_token,
        end_ids=end_token_ids(model, tokenizer) if end_ids is None else end_ids,
        generator=generator,
        repetition_window=repetition_window,
        constraint=constraint,
    )


def decode_steps(
    stepper,
    tokenizer,
    input_ids: Sequence[int],
    *,
    max_new_tokens: int = 256,
    temperature: float = 0.0,
    stop: Sequence[str] | None = None,
    on_token: Callable[[str], None] | None = None,
    end_ids: set[int],
    generator=None,
    repetition_window: int | None = DEFAULT_WINDOW,
    constraint=None,
) -> Decoded:
    """The token loop of `decode` over any `stepper` with `prefill(ids)` and `step(token_id)`.

    Both return logits [1, vocab]: `CacheStepper` (any transformers cache, eager) or
    `infuse.llm.static_prefix.StaticPrefixCache` (static cache, CUDA-graph steps).
    `finish_reason` is "stop" (end token, stop string, or complete JSON), "repetition" (the
    answer began repeating itself and was cut before the repeat) or "length".
    """
    import torch

    started = time.perf_counter()
    stops = [text for text in (stop or []) if text]
    guard = RepetitionGuard(None if constraint is not None else repetition_window)
    hold_back = max(max((len(text) for text in stops), default=1) - 1, guard.hold_back)
    new_ids: list[int] = []
    repeated = 0
    emitted = 0
    text = ""
    finish_reason = "length"
    first_token_at: float | None = None

    logits = stepper.prefill(input_ids)
    with torch.inference_mode():
        for _step in range(max_new_tokens):
            if constraint is not None:
                constraint.mask(logits)
            token_id = _pick(logits, temperature, generator)
            if first_token_at is None:
                first_token_at = time.perf_counter()
            if token_id in end_ids:
                finish_reason = "stop"
                break
            if constraint is not None:
                constraint.accept(token_id)
            new_ids.append(token_id)
            text = tokenizer.decode(new_ids, skip_special_tokens=True)
            cut = _first_stop(text, stops)
            if cut is not None:
                text = text[:cut]
                finish_reason = "stop"
                break
            keep = guard.check(text)
            if keep is not None:
                repeated = _drop_tokens_past(tokenizer, new_ids, keep)
                text = text[:keep]
                finish_reason = "repetition"
                break
            if constraint is not None and constraint.is_finished():
                finish_reason = "stop"
                break
            # Emit what can no longer change: a partly decoded character shows as U+FFFD.
            safe_end = len(text) - hold_back
            if text.endswith("\ufffd"):
                safe_end = min(safe_end, len(text) - 1)
            if on_token is not None and safe_end > emitted:
                on_token(text[emitted:safe_end])
                emitted = safe_end
            if len(new_ids) == max_new_tokens:
                break
            logits = stepper.step(token_id)
    if on_token is not None and len(text) > emitted:
        on_token(text[emitted:])
    finished = time.perf_counter()
    return Decoded(
        token_ids=new_ids,
        text=text,
        finish_reason=finish_reason,
        time_to_first_token_s=(first_token_at or finished) - started,
        total_s=finished - started,
        extra={"repeated_tokens": repeated} if repeated else {},
    )


def _drop_tokens_past(tokenizer, token_ids: list[int], keep_chars: int) -> int:
    """Drop trailing ids whose text lies past `keep_chars` (the repeat); return how many."""
    dropped = 0
    while token_ids and len(tokenizer.decode(token_ids[:-1], skip_special_tokens=True)) >= keep_chars:
        token_ids.pop()
        dropped += 1
    return dropped


def _pick(logits, temperature: float, generator) -> int:
    import torch

    if temperature <= 0:
        return int(torch.argmax(logits[0]).item())
    probabilities = torch.softmax(logits[0].float() / temperature, dim=-1)
    return int(torch.multinomial(probabilities, 1, generator=generator).item())


def _first_stop(text: str, stops: list[str]) -> int | None:
    positions = [text.find(stop) for stop in stops if stop in text]
    return min(positions) if positions else None
