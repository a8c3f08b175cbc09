"""A static KV cache that holds a fixed prefix (CAG's knowledge), and a fast token loop over it.

    engine = StaticPrefixCache.from_layers(model, layers, room=768)   the prefix copied in
    engine.warm_up()              on CUDA: capture the decode step and prefill buckets as graphs
    engine.prefill(ids)           the question after the prefix -> last logits (padded to a
                                  bucket length and replayed as a graph on CUDA)
    engine.step(token_id)         one token -> logits (a graph replay on CUDA)
    engine.rewind()               back to the prefix: only the write position moves

Why: eager decoding of an 8B model spends 20-50 ms a token on Python and kernel launches while
reading its weights takes ~5 ms. A CUDA graph replays all of a step's kernels at once. A graph
needs fixed addresses, so the cache is static (preallocated, written in place), the token goes
into a fixed buffer, and the step's positions and mask are computed inside the graph from the
cache's own write position. Attention is `infuse.llm.attention` (split-KV over long caches);
on CUDA the model's RMSNorm and gated-MLP forwards are switched to fused kernels
(`infuse.llm.fused_layers`), a few hundred fewer kernels per step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from infuse.errors import CacheError
from infuse.llm.attention import CHUNK_GRANULE, use_packed_gqa_attention
from infuse.llm.base import Generation
from infuse.llm.decoding import decode_steps, forward_kwargs

PREFILL_BUCKETS = (16, 32, 64, 128, 256)  # question lengths whose prefill is a CUDA graph


def static_prefix_unsupported(model) -> str | None:
    """Why `model` cannot use a StaticPrefixCache (None when it can): sliding-window layers."""
    config = model.config
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    layer_types = getattr(text_config, "layer_types", None)
    if layer_types and any(kind != "full_attention" for kind in layer_types):
        return f"its layers are not all full attention ({sorted(set(layer_types))})"
    if getattr(text_config, "sliding_window", None) and getattr(
        text_config, "use_sliding_window", True
    ):
        return "it uses sliding-window attention"
    return None


def generate_after_prefix(
    engine: StaticPrefixCache,
    tokenizer,
    input_ids: Sequence[int],
    *,
    max_new_tokens: int = 256,
    temperature: float = 0.0,
    stop: Sequence[str] | None = None,
    on_token: Callable[[str], None] | None = None,
    end_ids: set[int],
    seed: int | None = None,
) -> Generation:
    """Answer after the prefix `engine` holds (room is made first); the engine is left as it ends.

    The caller rewinds it (`engine.rewind()`) to start the next question from the prefix.
    """
    # Room for the input and every answer token but the last (it is never fed back).
    engine.reserve(engine.length + len(input_ids) + max_new_tokens)
    generator = None
    if temperature > 0 and seed is not None:
        import torch

        generator = torch.Generator(device=engine.device).manual_seed(seed)
    decoded = decode_steps(
        engine,
        tokenizer,
        input_ids,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        stop=stop,
        on_token=on_token,
        end_ids=end_ids,
        generator=generator,
    )
    return Generation(
        text=decoded.text,
        prompt_tokens=engine.prefix_length + len(input_ids),
        completion_tokens=len(decoded.token_ids),
        cached_tokens=engine.prefix_length,
        time_to_first_token_s=decoded.time_to_first_token_s,
        total_s=decoded.total_s,
        extra={"finish_reason": decoded.finish_reason, "token_ids": decoded.token_ids},
    )


class StaticPrefixCache:
    """A transformers StaticCache whose first `prefix_length` positions hold a prefix that stays.

    With `cuda_graph` (default: on CUDA) the decode step and the prefill of a question padded
    to one of `prefill_buckets` tokens are CUDA graphs, captured once (`warm_up`) and replayed.
    Padding goes after the question: causal attention keeps it out of the question's rows, and
    the entries it writes past the question's end are overwritten before anything attends them.
    """

    def __init__(
        self,
        model,
        capacity: int,
        *,
        cuda_graph: bool | None = None,
        prefill_buckets: Sequence[int] | None = None,
    ) -> None:
        import torch
        from transformers import StaticCache

        reason = static_prefix_unsupported(model)
        if reason:
            raise CacheError(f"A static prefix cache does not fit this model: {reason}.")
        self.model = model
        parameter = next(model.parameters())
        self.device = parameter.device
        self.capacity = -(-capacity // CHUNK_GRANULE) * CHUNK_GRANULE  # chunks divide it evenly
        config = model.config
        config = config.get_text_config() if hasattr(config, "get_text_config") else config
        kv_heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
        head_dim = getattr(config, "head_dim", None)
        head_dim = head_dim or config.hidden_size // config.num_attention_heads
        self.cache = StaticCache(config=model.config, max_cache_len=self.capacity)
        self.cuda_graph = self.device.type == "cuda" if cuda_graph is None else cuda_graph
        if prefill_buckets is None:
            prefill_buckets = PREFILL_BUCKETS if self.cuda_graph else ()
        self.prefill_buckets = tuple(sorted(prefill_buckets))
        with torch.inference_mode():
            self.cache.early_initialization(1, kv_heads, head_dim, parameter.dtype, self.device)
            self.positions = torch.arange(self.capacity, device=self.device)
            self._token = torch.zeros((1, 1), dtype=torch.long, device=self.device)
            self._bucket_ids = {
                size: torch.zeros((1, size), dtype=torch.long, device=self.device)
                for size in self.prefill_buckets
            }
            self._question_length = torch.zeros((), dtype=torch.long, device=self.device)
            self._last_row = torch.zeros((1,), dtype=torch.long, device=self.device)
        if any(type(layer).__name__ != "StaticLayer" for layer in self.cache.layers):
            raise CacheError("A static prefix cache needs plain StaticLayer layers for this model.")
        use_packed_gqa_attention(model)
        if self.cuda_graph:  # fewer kernels per graph-replayed step (a no-op off CUDA)
            from infuse.llm.fused_layers import use_fused_norm_and_mlp

            use_fused_norm_and_mlp(model)
        self.prefix_length = 0
        self.length = 0
        self._graphs: dict[int | str, tuple] = {}  # "step" or a bucket size -> (graph, logits)
        self.graph_error: str | None = None

    @classmethod
    def from_layers(
        cls,
        model,
        layers: Sequence[tuple],
        *,
        room: int,
        cuda_graph: bool | None = None,
        prefill_buckets: Sequence[int] | None = None,
    ) -> StaticPrefixCache:
        """A cache holding `layers` ([(keys, values)] per layer, [1, kv, tokens, d]) with `room` after."""
        tokens = int(layers[0][0].shape[-2]) if layers else 0
        engine = cls(model, tokens + room, cuda_graph=cuda_graph, prefill_buckets=prefill_buckets)
        engine.load_prefix(layers)
        return engine

    def load_prefix(self, layers: Sequence[tuple]) -> None:
        """Copy `layers` in as the prefix (the buffers stay where they are, so graphs stay valid)."""
        import torch

        tokens = int(layers[0][0].shape[-2]) if layers else 0
        if tokens > self.capacity:
            raise CacheError(f"A {tokens}-token prefix does not fit a {self.capacity}-token cache.")
        if len(layers) != len(self.cache.layers):
            raise CacheError(
                f"The saved cache has {len(layers)} layers, the model {len(self.cache.layers)}; "
                "rebuild it."
            )
        with torch.inference_mode():
            for layer, (keys, values) in zip(self.cache.layers, layers):
                layer.keys[:, :, :tokens].copy_(keys)
                layer.values[:, :, :tokens].copy_(values)
        self.prefix_length = tokens
        self.rewind()

    def prefix_layers(self) -> list[tuple]:
        """The prefix's keys/values per layer, as views [1, kv, prefix_length, d] (for saving)."""
        return [
            (layer.keys[:, :, : self.prefix_length], layer.values[:, :, : self.prefix_length])
            for layer in self.cache.layers
        ]

    def rewind(self, length: int | None = None) -> None:
        """Move the write position back to `length` (default: the end of the prefix)."""
        self._set_length(self.prefix_length if length is None else length)

    def reserve(self, tokens: int) -> None:
        """Make room for `tokens` positions in all (prefix included): reallocate when needed."""
        if tokens <= self.capacity:
            return
        bigger = StaticPrefixCache(
            self.model,
            max(tokens, self.capacity * 5 // 4),
            cuda_graph=self.cuda_graph,
            prefill_buckets=self.prefill_buckets,
        )
        bigger.load_prefix(self.prefix_layers())
        self.__dict__.update(bigger.__dict__)  # the old buffers and graphs go with the old dict
        self.warm_up()

    def warm_up(self) -> None:
        """Capture the decode step and every prefill bucket that fits now, not at first use.

        Should a capture fail, everything runs eagerly from then on and `graph_error` says why.
        """
        if self.cuda_graph:
            for key in ("step", *self.prefill_buckets):
                if self.cuda_graph and key not in self._graphs and self._fits(key):
                    self._capture(key)

    def prefill(self, input_ids: Sequence[int]):
        """Run `input_ids` after what the cache holds; return the last position's logits [1, vocab]."""
        import torch

        count = len(input_ids)
        self._check_room(count)
        bucket = next(
            (size for size in self.prefill_buckets if size >= count and self._fits(size)), None
        )
        with torch.inference_mode():
            if bucket is not None:
                ids = torch.tensor(list(input_ids), dtype=torch.long)
                self._bucket_ids[bucket][0, :count].copy_(ids)
                self._question_length.fill_(count)
                self._last_row.fill_(count - 1)
                logits = self._run(bucket)
            else:
                logits = self._prefill_eager(input_ids)
        self.length += count
        return logits

    def step(self, token_id: int):
        """Feed one token; return its logits [1, vocab] (valid until the next step)."""
        import torch

        self._check_room(1)
        with torch.inference_mode():
            self._token.fill_(token_id)
            logits = self._run("step")
        self.length += 1
        return logits

    def _run(self, key: int | str):
        if self.cuda_graph and key not in self._graphs:
            self._capture(key)
        if self.cuda_graph:
            graph, logits = self._graphs[key]
            graph.replay()
            return logits
        return self._body(key)

    def _prefill_eager(self, input_ids: Sequence[int]):
        import torch

        start, count = self.length, len(input_ids)
        ids = torch.tensor([list(input_ids)], dtype=torch.long, device=self.device)
        positions = self.positions[start : start + count]
        mask = (self.positions.unsqueeze(0) <= positions.unsqueeze(1))[None, None]
        output = self.model(
            input_ids=ids,
            position_ids=positions.unsqueeze(0),
            attention_mask=mask,
            **forward_kwargs(self.model, self.cache),
        )
        return output.logits[:, -1, :]

    def _body(self, key: int | str):
        # Everything from device tensors, so that a graph replay sees the current position.
        start = self.cache.layers[0].cumulative_length.clone()
        count = 1 if key == "step" else key
        positions = (start + self.positions[:count]).unsqueeze(0)  # [1, count]
        mask = (self.positions.unsqueeze(0) <= positions.transpose(0, 1))[None, None]
        kwargs = forward_kwargs(self.model, self.cache)
        if key != "step" and "logits_to_keep" in kwargs:
            kwargs["logits_to_keep"] = self._last_row  # the question's last row, not the padding's
        ids = self._token if key == "step" else self._bucket_ids[key]
        output = self.model(input_ids=ids, position_ids=positions, attention_mask=mask, **kwargs)
        logits = output.logits
        if key != "step":
            if "logits_to_keep" not in kwargs:
                logits = logits.index_select(1, self._last_row)
            end = start + self._question_length  # the padding's entries are left behind
            for layer in self.cache.layers:
                layer.cumulative_length.copy_(end)
        return logits[:, -1, :]

    def _capture(self, key: int | str) -> None:
        try:
            self._graphs[key] = self._capture_graph(key)
        except Exception as error:  # noqa: BLE001 - any failure: eager runs stay correct
            import warnings

            self.cuda_graph = False
            self._graphs.clear()
            self.graph_error = f"{key}: {type(error).__name__}: {str(error).splitlines()[0][:300]}"
            self._set_length(self.length)
            warnings.warn(
                f"CUDA graph capture failed ({self.graph_error}); running eagerly (correct, slower).",
                RuntimeWarning,
                stacklevel=3,
            )

    def _capture_graph(self, key: int | str) -> tuple:
        import torch

        start = self.length
        stream = torch.cuda.Stream(device=self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        # Warm-up runs on a side stream (cuBLAS handles, allocator): they write past `start`,
        # where the next real run writes again before anything attends to it.
        with torch.cuda.stream(stream), torch.inference_mode():
            for _ in range(2):
                self._set_length(start)
                self._body(key)
        torch.cuda.current_stream(self.device).wait_stream(stream)
        self._set_length(start)
        graph = torch.cuda.CUDAGraph()
        with torch.inference_mode(), torch.cuda.graph(graph):
            logits = self._body(key)
        self._set_length(start)
        return graph, logits

    def _set_length(self, length: int) -> None:
        import torch

        with torch.inference_mode():
            for layer in self.cache.layers:
                layer.cumulative_length.fill_(length)
        self.length = length

    def _fits(self, key: int | str) -> bool:
        return self.length + (1 if key == "step" else int(key)) <= self.capacity

    def _check_room(self, tokens: int) -> None:
        if self.length + tokens > self.capacity:
            raise CacheError(
                f"The static cache holds {self.capacity} tokens and {self.length} are used: no room "
                f"for {tokens} more. Reserve room first (StaticPrefixCache.reserve)."
            )
