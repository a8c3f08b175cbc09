"""CAG with a local model: build the knowledge cache once, answer many questions from it.

    build_cache(files, model, output)   render -> fit check -> one prefill -> save to disk
    CagSession.open(cache_dir)          load model + cache (rebuilt if stale), then .ask() many times
    ask(question, cache_dir)            one question, one-shot

After every question the cache is cropped back to the knowledge length: it never grows.
On CUDA (`fast=None` -> on; `fast=False` turns it off) the knowledge sits in a static cache
(`infuse.llm.static_prefix`): split-KV attention, question prefill and decode step as CUDA
graphs captured once per session, and a rewind of the write position after each answer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from infuse.answer import Answer
from infuse.cag.knowledge import (
    DEFAULT_INSTRUCTIONS,
    KnowledgePrefix,
    build_prefix,
    knowledge_text,
    read_knowledge_files,
    sha256_text,
    system_message,
)
from infuse.cag.store import (
    FORMAT_VERSION,
    Manifest,
    load_layers,
    model_fingerprint,
    prefix_sha256,
    save_cache,
    stale_reasons,
)
from infuse.errors import CacheError
from infuse.llm.local import LocalChatModel
from infuse.models import DEFAULT_MODEL

QUESTION_ROOM = 256  # tokens kept free for a question (its chat-template wrapping included)
ANSWER_ROOM = 512  # tokens kept free for an answer
PREFILL_CHUNK = 2048  # tokens per forward while building: bounded memory, a progress bar that moves


def check_fit(
    knowledge_tokens: int,
    context_window: int | None,
    model_name: str,
    *,
    question_room: int = QUESTION_ROOM,
    answer_room: int = ANSWER_ROOM,
) -> None:
    """Raise CacheError, with the numbers, when knowledge + question + answer exceed the context."""
    if context_window is None:
        return
    needed = knowledge_tokens + question_room + answer_room
    if needed > context_window:
        raise CacheError(
            f"The knowledge is {knowledge_tokens:,} tokens; with {question_room} for a question and "
            f"{answer_room} for the answer that is {needed:,}, more than the {context_window:,}-token "
            f"context window of '{model_name}' (by {needed - context_window:,}). Use RAG instead "
            "(`infuse ask --mode rag`), a model with a longer context, or less knowledge."
        )


def build_cache(
    files: list[Path | str],
    model: str | LocalChatModel = DEFAULT_MODEL,
    output: Path | str = "cag-cache",
    *,
    instructions: str = DEFAULT_INSTRUCTIONS,
    device: str | None = None,
    question_room: int = QUESTION_ROOM,
    answer_room: int = ANSWER_ROOM,
    on_progress: Callable[[int, int], None] | None = None,
) -> Manifest:
    """Render the files' knowledge, check it fits, prefill it once and save the KV cache to `output`.

    Returns the Manifest written. Raises CacheError when it does not fit the model's context.
    """
    sources = [str(Path(path).resolve()) for path in files]
    system = system_message(knowledge_text(read_knowledge_files(sources)), instructions)
    chat = _local_chat(model, device)  # after reading: a bad file fails before a slow load
    session = CagSession.build(
        chat,
        system,
        sources=sources,
        model_spec=_spec(model, chat),
        question_room=question_room,
        answer_room=answer_room,
        on_progress=on_progress,
        fast=False,  # only saved here: no static cache or graph to set up
    )
    session.save(Path(output))
    return session.manifest


class CagSession:
    """A loaded model and its knowledge cache; `ask` as often as you like, the cache stays the same size."""

    def __init__(
        self,
        chat: LocalChatModel,
        cache,
        prefix: KnowledgePrefix,
        manifest: Manifest,
        *,
        loaded_from_disk: bool,
        load_s: float,
        fast: bool | None = None,
        room: int = QUESTION_ROOM + ANSWER_ROOM,
    ) -> None:
        """Wrap a cache holding `prefix` (a DynamicCache, or [(keys, values)] per layer).

        `fast` (default: on for CUDA models that allow it) moves the knowledge into a static cache
        with `room` tokens after it and decodes with a CUDA graph; False keeps transformers'
        DynamicCache and the eager loop, the exact reference path.
        """
        self.chat = chat
        self.prefix = prefix
        self.manifest = manifest
        self.loaded_from_disk = loaded_from_disk
        self.load_s = load_s
        self.fast = resolve_fast(chat, fast)
        self.engine = None
        self._dynamic = None
        layers = cache if isinstance(cache, list) else None
        if self.fast:
            from infuse.llm.static_prefix import StaticPrefixCache

            started = time.perf_counter()
            if layers is None:
                layers = [(layer.keys, layer.values) for layer in cache.layers]
            self.engine = StaticPrefixCache(chat.model, len(prefix.token_ids) + room)
            self.engine.load_prefix(layers)
            del layers, cache  # the dynamic copy goes: one copy of the knowledge in memory
            self.engine.warm_up()  # the decode step's CUDA graph, captured once per session
            self.load_s += time.perf_counter() - started
        elif layers is not None:
            self._dynamic = chat.new_cache()
            for index, (keys, values) in enumerate(layers):
                self._dynamic.update(keys, values, index)
        else:
            self._dynamic = cache

    @property
    def cache(self):
        """The KV cache: transformers' StaticCache on the fast path, else its DynamicCache."""
        return self.engine.cache if self.engine is not None else self._dynamic

    @property
    def knowledge_tokens(self) -> int:
        """Tokens in the knowledge prefix (what the cache holds between questions)."""
        return len(self.prefix.token_ids)

    @property
    def cache_length(self) -> int:
        """Tokens the cache holds now."""
        if self.engine is not None:
            return self.engine.length
        return int(self._dynamic.get_seq_length())

    @classmethod
    def build(
        cls,
        chat: LocalChatModel,
        system: str,
        *,
        sources: list[str] | None = None,
        model_spec: str | None = None,
        question_room: int = QUESTION_ROOM,
        answer_room: int = ANSWER_ROOM,
        on_progress: Callable[[int, int], None] | None = None,
        fast: bool | None = None,
    ) -> CagSession:
        """Prefill `system` (the knowledge turn) into a fresh cache, after the fit check.

        `fast`: see `CagSession` (None: on for CUDA).
        """
        import torch

        from infuse.llm.decoding import forward_kwargs

        started = time.perf_counter()
        prefix = build_prefix(chat.tokenizer, system)
        check_fit(
            len(prefix.token_ids),
            chat.context_window,
            chat.name,
            question_room=question_room,
            answer_room=answer_room,
        )
        cache = chat.new_cache()
        ids = prefix.token_ids
        for start in range(0, len(ids), PREFILL_CHUNK):
            chunk = torch.tensor([ids[start : start + PREFILL_CHUNK]], device=chat.device)
            with torch.inference_mode():
                chat.model(input_ids=chunk, **forward_kwargs(chat.model, cache))
            if on_progress is not None:
                on_progress(min(start + PREFILL_CHUNK, len(ids)), len(ids))
        manifest = Manifest(
            fingerprint=current_fingerprint(chat, prefix),
            knowledge_tokens=len(ids),
            model=model_spec or chat.name,
            sources=list(sources or []),
            system=system,
            facts={"build_s": round(time.perf_counter() - started, 3), "device": str(chat.device)},
        )
        return cls(
            chat,
            cache,
            prefix,
            manifest,
            loaded_from_disk=False,
            load_s=time.perf_counter() - started,
            fast=fast,
            room=question_room + answer_room,
        )

    @classmethod
    def open(
        cls,
        cache_dir: Path | str,
        *,
        model: str | LocalChatModel | None = None,
        device: str | None = None,
        rebuild_stale: bool = True,
        fast: bool | None = None,
    ) -> CagSession:
        """Load the cache in `cache_dir` for `model` (default: the one it was built with).

        A stale cache (model, template, instructions or knowledge files changed) is rebuilt from its
        source files and saved again when `rebuild_stale`, else CacheError says what changed.
        `fast`: see `CagSession` (None: on for CUDA).
        """
        started = time.perf_counter()
        cache_dir = Path(cache_dir)
        manifest = Manifest.read(cache_dir)
        chat = _local_chat(model or manifest.model, device)
        system = manifest.system
        if manifest.sources:
            system = _current_system(manifest)
        prefix = build_prefix(chat.tokenizer, system)
        reasons = stale_reasons(manifest.fingerprint, current_fingerprint(chat, prefix))
        if reasons:
            if not rebuild_stale:
                raise CacheError(
                    f"The CAG cache in {cache_dir} is stale: {'; '.join(reasons)}. Rebuild it with "
                    f"`infuse cag build ... --output {cache_dir}`."
                )
            spec = model if isinstance(model, str) else manifest.model
            session = cls.build(chat, system, sources=manifest.sources, model_spec=spec, fast=fast)
            session.manifest.facts["rebuilt_because"] = reasons
            session.save(cache_dir)
            return session
        fast = resolve_fast(chat, fast)
        # The fast path copies each layer into its static cache: read to host memory first, so
        # the GPU never holds the knowledge twice.
        layers = load_layers(cache_dir, manifest, "cpu" if fast else chat.device)
        return cls(
            chat,
            layers,
            prefix,
            manifest,
            loaded_from_disk=True,
            load_s=time.perf_counter() - started,
            fast=fast,
        )

    def save(self, cache_dir: Path) -> None:
        """Write this session's knowledge cache to `cache_dir` (safetensors + manifest)."""
        self._restore()
        if self.engine is not None:
            layers = self.engine.prefix_layers()
        else:
            layers = [(layer.keys, layer.values) for layer in self._dynamic.layers]
        save_cache(cache_dir, layers, self.prefix.token_ids, self.manifest)

    def ask(
        self,
        question: str,
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        stop: list[str] | None = None,
        on_token: Callable[[str], None] | None = None,
    ) -> Answer:
        """Answer `question` from the cached knowledge; only the question's tokens are computed."""
        question_ids = self.prefix.question_ids(self.chat.tokenizer, question)
        window = self.chat.context_window
        if window is not None:
            room = window - self.knowledge_tokens - len(question_ids)
            if room < 1:
                raise CacheError(
                    f"The question is {len(question_ids)} tokens; with the {self.knowledge_tokens:,} "
                    f"knowledge tokens it exceeds the {window:,}-token context. Ask a shorter question."
                )
            max_new_tokens = min(max_new_tokens, room)
        try:
            if self.engine is not None:
                generation = self._generate_fast(
                    question_ids, max_new_tokens, temperature, stop, on_token
                )
            else:
                generation = self.chat.generate_from_ids(
                    question_ids,
                    self._dynamic,
                    max_new_tokens=max_new_tokens,
                    temperature=temperature,
                    stop=stop,
                    on_token=on_token,
                    cached_tokens=self.knowledge_tokens,
                )
        finally:
            self._restore()
        facts: dict[str, Any] = {
            "knowledge_tokens": self.knowledge_tokens,
            "question_tokens": len(question_ids),
            "answer_tokens": generation.completion_tokens,
            "cache_loaded_from_disk": self.loaded_from_disk,
            "cache_length_after": self.cache_length,
            "model": self.manifest.model,
            "answer_token_ids": generation.extra.get("token_ids", []),
            "decoding": self.decoding,
        }
        if "rebuilt_because" in self.manifest.facts:
            facts["cache_rebuilt_because"] = self.manifest.facts["rebuilt_because"]
        timings = {
            "time_to_first_token_s": generation.time_to_first_token_s or 0.0,
            "total_s": generation.total_s,
            "cache_load_s": self.load_s,
        }
        return Answer(text=generation.text, method="cag", timings=timings, facts=facts)

    @property
    def decoding(self) -> str:
        """How answers are decoded: "static cache + CUDA graph", "static cache" or "dynamic cache"."""
        if self.engine is None:
            return "dynamic cache"
        return "static cache + CUDA graph" if self.engine.cuda_graph else "static cache"

    def _generate_fast(self, question_ids, max_new_tokens, temperature, stop, on_token):
        from infuse.llm.static_prefix import generate_after_prefix

        return generate_after_prefix(
            self.engine,
            self.chat.tokenizer,
            question_ids,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            stop=stop,
            on_token=on_token,
            end_ids=self.chat.end_ids,
            seed=self.chat.seed,
        )

    def _restore(self) -> None:
        if self.engine is not None:
            self.engine.rewind()
            return
        extra = self.cache_length - self.knowledge_tokens
        if extra > 0:
            self._dynamic.crop(-extra)


def ask(
    question: str,
    cache_dir: Path | str,
    *,
    model: str | LocalChatModel | None = None,
    max_new_tokens: int = 256,
    temperature: float = 0.0,
    on_token: Callable[[str], None] | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    fast: bool | None = None,
) -> Answer:
    """Answer one question from the CAG cache in `cache_dir` (or through a server with `base_url`).

    `fast`: static cache + CUDA-graph decoding (None: on for CUDA); see `CagSession`.
    """
    if base_url:
        from infuse.cag.server import ServerCagSession

        name = model if isinstance(model, str) else None
        session = ServerCagSession.open(cache_dir, base_url=base_url, model=name, api_key=api_key)
    else:
        session = CagSession.open(cache_dir, model=model, fast=fast)
    return session.ask(
        question, max_new_tokens=max_new_tokens, temperature=temperature, on_token=on_token
    )


def resolve_fast(chat: LocalChatModel, fast: bool | None) -> bool:
    """Whether to use the static cache + CUDA graph path: `fast` when given, else on for CUDA.

    Raises CacheError when `fast=True` but the model cannot (sliding-window attention).
    """
    from infuse.llm.static_prefix import static_prefix_unsupported

    reason = static_prefix_unsupported(chat.model)
    if fast and reason:
        raise CacheError(
            f"fast=True needs a static cache, but '{chat.name}' cannot use one: {reason}. "
            "Use fast=False."
        )
    if fast is None:
        return chat.device.type == "cuda" and reason is None
    return bool(fast)


def current_fingerprint(chat: LocalChatModel, prefix: KnowledgePrefix) -> dict[str, Any]:
    """The fingerprint a cache built now, by `chat` for `prefix`, would carry."""
    return {
        "format": FORMAT_VERSION,
        "model": model_fingerprint(chat.model),
        "template_sha256": sha256_text(chat.tokenizer.chat_template or ""),
        "system_sha256": sha256_text(prefix.system),
        "prefix_sha256": prefix_sha256(prefix.token_ids),
    }


def _current_system(manifest: Manifest) -> str:
    """The system turn the manifest's source files give today (CacheError when they are gone)."""
    missing = [path for path in manifest.sources if not Path(path).is_file()]
    if missing:
        raise CacheError(
            f"The knowledge files this cache was built from are gone ({', '.join(missing)}), so "
            "it cannot be checked or rebuilt; build it again from the files you have now."
        )
    instructions = manifest.system.split("\n\n# Knowledge\n\n", 1)[0]
    return system_message(knowledge_text(read_knowledge_files(manifest.sources)), instructions)


def _local_chat(model: str | LocalChatModel, device: str | None) -> LocalChatModel:
    if isinstance(model, LocalChatModel):
        return model
    from infuse.llm.loading import load_local_chat_model

    return load_local_chat_model(model, device=device)


def _spec(model: str | LocalChatModel, chat: LocalChatModel) -> str:
    return model if isinstance(model, str) else chat.name
