"""CAG with a local model: build the knowledge cache once, answer many questions from it.

    build_cache(files, model, output)   render -> fit check -> one prefill -> save to disk
    CagSession.open(cache_dir)          load model + cache (rebuilt if stale), then .answer() many times
    answer(question, cache_dir)         one question, one-shot

After every question the cache is cropped back to the knowledge length: it never grows. A
session is safe to share between threads: questions take turns on its one cache (a lock).

On CUDA (`fast=None` -> on; `fast=False` turns it off) the knowledge sits in a static cache
(`infuse.llm.static_prefix`): split-KV attention, question prefill and decode step as CUDA
graphs captured once per session, and a rewind of the write position after each answer.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from infuse.answer import Answer, AnswerMethod, AnswerOptions
from infuse.cag.knowledge import (
    DEFAULT_INSTRUCTIONS,
    KnowledgePrefix,
    build_prefix,
    knowledge_files,
    knowledge_text,
    read_knowledge_files,
    sha256_text,
    system_message,
)
from infuse.cag.store import (
    FORMAT_VERSION,
    KV_FILE,
    MANIFEST_FILE,
    Manifest,
    load_layers,
    model_fingerprint,
    prefix_sha256,
    save_cache,
    stale_reasons,
)
from infuse.conversation import check_history
from infuse.errors import CacheError, ConfigError, ContextTooLongError
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
    """Raise ContextTooLongError, with the numbers, when knowledge + question + answer exceed
    the context window."""
    if context_window is None:
        return
    needed = knowledge_tokens + question_room + answer_room
    if needed > context_window:
        raise ContextTooLongError(
            f"The knowledge is {knowledge_tokens:,} tokens; with {question_room} for a question and "
            f"{answer_room} for the answer that is {needed:,}, more than the {context_window:,}-token "
            f"context window of '{model_name}' (by {needed - context_window:,}). Use RAG instead "
            "(`infuse ask --mode rag`), a model with a longer context, or less knowledge.",
            knowledge_tokens=knowledge_tokens,
            context_window=context_window,
        )


def _knowledge_turn(files: list[Path | str], instructions: str) -> tuple[list[str], str]:
    """The knowledge files (folders expanded) and the system turn that holds their text."""
    sources = [str(path) for path in knowledge_files(list(files))]
    return sources, system_message(knowledge_text(read_knowledge_files(sources)), instructions)


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
    rebuild: bool = False,
) -> Manifest:
    """Render the files' knowledge, check it fits, prefill it once and save the KV cache to `output`.

    `output` must be empty, new, or hold a cache built for the same model; a cache built for
    another model is replaced only with `rebuild=True`, and a folder holding other files never.
    Returns the Manifest written. Raises ContextTooLongError when the knowledge does not fit
    the model's context, CacheError when `output` may not be written.
    """
    for flag, value in (("--question-room", question_room), ("--answer-room", answer_room)):
        if value < 1:
            raise ConfigError(f"{flag} {value}: must be at least 1 token.")
    check_output(Path(output), _spec(model, None), rebuild=rebuild)
    from infuse.files import check_writable_folder

    check_writable_folder(output, setting="--output folder")  # before the minutes of prefill
    sources, system = _knowledge_turn(files, instructions)  # a bad file fails before the model loads
    chat = _local_chat(model, device)
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


def check_output(output: Path, model_spec: str, *, rebuild: bool = False) -> None:
    """Refuse to write a cache into `output` when that would destroy something.

    Raises CacheError when `output` holds files that are not a CAG cache, or (unless
    `rebuild`) a cache built for another model than `model_spec`.
    """
    if not output.exists():
        return
    if not output.is_dir():
        raise CacheError(f"--output {output} is a file, not a folder; give a folder for the cache.")
    names = {path.name for path in output.iterdir()}
    foreign = sorted(names - {MANIFEST_FILE, KV_FILE} - {n for n in names if n.startswith(".")})
    if foreign:
        raise CacheError(
            f"--output {output} holds files that are not a CAG cache ({', '.join(foreign[:3])}"
            f"{', ...' if len(foreign) > 3 else ''}); infuse writes a cache only into a new or "
            "empty folder, or over a cache. Choose another --output."
        )
    if MANIFEST_FILE not in names or rebuild:
        return
    try:
        built_for = Manifest.read(output).model
    except CacheError:
        raise CacheError(
            f"{output / MANIFEST_FILE} is unreadable; add --rebuild to replace the cache in {output}."
        ) from None
    if not same_model(built_for, model_spec):
        raise CacheError(
            f"The cache in {output} was built for model '{built_for}', not '{model_spec}'; "
            "add --rebuild (rebuild=True) to replace it, or choose another --output."
        )


def same_model(first: str, second: str) -> bool:
    """Whether two model specs name the same model (folders compared as resolved paths)."""
    if first == second:
        return True
    paths = [Path(spec).expanduser() for spec in (first, second)]
    return all(path.exists() for path in paths) and paths[0].resolve() == paths[1].resolve()


class CagSession(AnswerMethod):
    """A loaded model and its knowledge cache; `answer` as often as you like (from several
    threads too: questions take turns on the one cache), the cache stays the same size."""

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
        self._lock = threading.RLock()  # one cache: questions take turns
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
            with model_lock(chat), torch.inference_mode():
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
    def from_files(
        cls,
        files: list[Path | str],
        model: str | LocalChatModel = DEFAULT_MODEL,
        *,
        instructions: str = DEFAULT_INSTRUCTIONS,
        device: str | None = None,
        on_progress: Callable[[int, int], None] | None = None,
        fast: bool | None = None,
    ) -> CagSession:
        """A session over the knowledge in `files`, prefilled now (nothing saved to disk), with
        the default room for a question and an answer (`build` takes others).

        The files are read before the model loads, so a bad file fails fast. Raises
        ContextTooLongError when the knowledge does not fit the model's context.
        """
        sources, system = _knowledge_turn(files, instructions)
        chat = _local_chat(model, device)
        return cls.build(
            chat, system, sources=sources, model_spec=_spec(model, chat), on_progress=on_progress, fast=fast
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
        rebuild: bool = False,
    ) -> CagSession:
        """Load the cache in `cache_dir` for `model` (default: the one it was built with).

        A stale cache (template, instructions, knowledge files or the model's weights changed) is
        rebuilt from its source files and saved again when `rebuild_stale`, else CacheError says
        what changed. A cache built for another model is refused (CacheError) unless `rebuild`:
        rebuilding would replace it on disk. A damaged cache file is a CacheError naming it.
        `fast`: see `CagSession` (None: on for CUDA).
        """
        started = time.perf_counter()
        cache_dir = Path(cache_dir)
        manifest = Manifest.read(cache_dir)
        if model is not None and not rebuild:
            spec = _spec(model, None)
            if not same_model(manifest.model, spec):
                raise CacheError(
                    f"The cache in {cache_dir} was built for model '{manifest.model}', not "
                    f"'{spec}'. Leave the model out to use it, or rebuild it for this model with "
                    f"`infuse cag build ... --model {spec} --output {cache_dir} --rebuild`."
                )
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

    def answer_with(self, question: str, options: AnswerOptions) -> Answer:
        """Answer from the cached knowledge; only the conversation's tokens are computed.
        Thread-safe: questions take turns.

        Raises ContextTooLongError before generating when the question (with its history) does
        not fit beside the knowledge.
        """
        history = check_history(options.history)
        generate = options.generate_keywords()
        max_new_tokens = generate.pop("max_new_tokens")
        question_ids = self.prefix.question_ids(self.chat.tokenizer, question, history)
        window = self.chat.context_window
        if window is not None:
            room = window - self.knowledge_tokens - len(question_ids)
            if room < 1:
                raise ContextTooLongError(
                    f"The question{' and earlier turns' if history else ''} take "
                    f"{len(question_ids):,} tokens; with the {self.knowledge_tokens:,} knowledge "
                    f"tokens that leaves no room for an answer in the {window:,}-token context of "
                    f"'{self.chat.name}'. Ask a shorter question"
                    f"{' or start a new conversation' if history else ''}.",
                    knowledge_tokens=self.knowledge_tokens,
                    context_window=window,
                    question_tokens=len(question_ids),
                )
            max_new_tokens = min(max_new_tokens, room)
        # The cache's lock, then the model's (shared with other methods): always in this order.
        with self._lock, model_lock(self.chat):
            try:
                if self.engine is not None:
                    generation = self._generate_fast(question_ids, max_new_tokens, **generate)
                else:
                    generation = self.chat.generate_from_ids(
                        question_ids,
                        self._dynamic,
                        max_new_tokens=max_new_tokens,
                        cached_tokens=self.knowledge_tokens,
                        **generate,
                    )
            finally:
                self._restore()
            cache_length_after = self.cache_length
        facts: dict[str, Any] = {
            "knowledge_tokens": self.knowledge_tokens,
            "question_tokens": len(question_ids),
            "answer_tokens": generation.completion_tokens,
            "cached_tokens": self.knowledge_tokens,
            "cache_loaded_from_disk": self.loaded_from_disk,
            "cache_length_after": cache_length_after,
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


def answer(
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
    history: Sequence[dict[str, str]] | None = None,
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
    return session.answer(
        question,
        history=history,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        on_token=on_token,
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


def model_lock(chat: LocalChatModel):
    """The lock that serialises work on `chat`'s weights (`LocalChatModel.lock`, taken by its
    own generate too); a no-op for a model object without one."""
    return getattr(chat, "lock", None) or nullcontext()


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


def _spec(model: str | LocalChatModel, chat: LocalChatModel | None) -> str:
    if isinstance(model, str):
        return model
    return (chat or model).name
