"""The standard methods built from options: base, rag, cag, lora, lora+rag, research.

    build_methods(names, MethodOptions(...)) -> (methods, skipped)

Each method is a `LazyMethod`: nothing loads until its `setup()` (eval times it apart from
answering; a server calls it while it says "loading"), and a piece that is missing or cannot
run becomes a `SkipMethod` with its reason. The base model is loaded once and shared by base,
rag and cag; the adapter once, shared by lora and lora+rag; the knowledge base is opened (and
brought up to date with `knowledge`) once, shared by rag and lora+rag.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infuse.errors import ConfigError, ContextTooLongError
from infuse.methods.base import (
    DOES_NOT_FIT,
    MISSING,
    LazyMethod,
    ModelMethod,
    SkipMethod,
    SkippedMethod,
)
from infuse.models import DEFAULT_MODEL

DEFAULT_METHODS = ("base", "rag", "cag", "lora", "lora+rag")  # what eval runs when not told
METHOD_NAMES = (*DEFAULT_METHODS, "research")


@dataclass
class MethodOptions:
    """What the standard methods are built from (CLI flags map onto these one to one).

    `knowledge` are files, folders or globs: CAG loads them whole, and RAG's knowledge base is
    brought up to date with them. `kb` is the knowledge base for RAG (folder or postgresql://
    URL); `cag_cache` a cache folder made by `infuse cag build` (used instead of prefilling
    `knowledge`).
    """

    model: str = DEFAULT_MODEL
    base_url: str | None = None
    api_key: str | None = None
    knowledge: list[Path] = field(default_factory=list)
    run_dir: Path | None = None  # a training run folder (lora, lora+rag)
    kb: str | None = None
    embedder: str | None = None  # for a new knowledge base (default: the packaged one)
    cag_cache: Path | None = None
    max_new_tokens: int = 64
    device: str | None = None
    k: int = 5  # RAG: passages given to the model
    grounded: bool = True  # RAG and CAG check answers against the knowledge and decline without it
    search: str | None = None  # research: web search backend (searxng:URL, brave, ...; None: kb only)


def knowledge_files(paths: Sequence[str | Path]) -> list[Path]:
    """The files named by `paths` (files, folders searched recursively, globs), in order.

    Raises ConfigError naming a path that matches nothing.
    """
    from infuse.knowledge.reading import find_files

    for path in paths:
        if not Path(path).exists() and not any(ch in str(path) for ch in "*?["):
            raise ConfigError(f"knowledge {path}: no such file or folder. Give files, folders or globs.")
    files, _skipped = find_files([str(path) for path in paths])  # named by the kb's ingest report
    if not files:
        raise ConfigError(
            f"knowledge {', '.join(map(str, paths))}: no readable documents there "
            "(see `infuse kb add` for what is read and why a file is skipped)."
        )
    return files


def open_knowledge_base(
    location: str | Path, knowledge: Sequence[str | Path] = (), *, embedder: Any = None
):
    """Open the knowledge base at `location`; with `knowledge`, create it if needed and bring it
    up to date with those files and folders (unchanged files are not re-indexed; files gone
    from disk are dropped by a sync first). `embedder`: see `KnowledgeBase`."""
    from infuse.knowledge.kb import KnowledgeBase

    if not knowledge:
        return KnowledgeBase(location, embedder=embedder)
    kb = KnowledgeBase(location, embedder=embedder, create=True)
    if kb.documents():
        kb.sync()
    kb.add([str(path) for path in knowledge])
    return kb


class _Shared:
    """What several methods share, each opened once on first use (thread-safe)."""

    def __init__(self, options: MethodOptions) -> None:
        self.options = options
        self._lock = threading.Lock()
        self._opened: dict[str, Any] = {}

    def _once(self, key: str, open_it) -> Any:
        with self._lock:
            if key not in self._opened:
                self._opened[key] = open_it()
            return self._opened[key]

    def base(self) -> Any:
        def load():
            from infuse.llm import load_chat_model

            o = self.options
            if o.base_url:
                return load_chat_model(o.model, base_url=o.base_url, api_key=o.api_key)
            return load_chat_model(o.model, device=o.device)

        return self._once("base", load)

    def kv_base(self) -> Any:
        """The base model as a transformers model, for CAG's KV cache: the shared base when it is
        one, else (the base runs on llama.cpp) a transformers copy, loaded once."""
        from infuse.llm.local import LocalChatModel

        base = self.base()
        if isinstance(base, LocalChatModel):
            return base

        def load():
            from infuse.llm import load_chat_model

            return load_chat_model(self.options.model, device=self.options.device,
                                   backend="transformers")

        return self._once("kv_base", load)

    def adapter(self) -> Any:
        def load():
            from infuse.train.runs import load_run_model

            return load_run_model(self.options.run_dir, device=self.options.device)

        return self._once("adapter", load)

    def knowledge_base(self, name: str) -> Any:
        o = self.options
        if o.kb is None:
            raise _skip(name, "no knowledge base to retrieve from (give --knowledge or --kb)")
        return self._once("kb", lambda: open_knowledge_base(o.kb, o.knowledge, embedder=o.embedder))


def _skip(name: str, reason: str, code: str = MISSING, facts=None) -> SkipMethod:
    return SkipMethod(SkippedMethod(name, reason, code, dict(facts or {})))


def run_setting(run_dir: Path, key: str) -> Any:
    """One setting of a training run's config (None when absent or unreadable)."""
    from infuse.errors import InfuseError
    from infuse.train.runs import RunRecord

    try:
        return getattr(RunRecord.read(run_dir, metrics=False).config, key, None)
    except InfuseError:
        return None


def _base_method(options: MethodOptions, shared: _Shared) -> LazyMethod:
    return LazyMethod(
        "base",
        lambda: ModelMethod("base", shared.base(), max_new_tokens=options.max_new_tokens),
    )


def _rag_method(name: str, options: MethodOptions, shared: _Shared, chat_model) -> LazyMethod:
    def open_it():
        from infuse.rag import RAG_SEARCH, RagSession

        kb = shared.knowledge_base(name)
        return RagSession(
            kb, chat_model(), name=name, retrieval=RAG_SEARCH.changed(k=options.k),
            max_new_tokens=options.max_new_tokens, grounded=options.grounded,
        )

    facts = {"run_dir": str(options.run_dir)} if name == "lora+rag" else {}
    return LazyMethod(name, open_it, facts=facts)


def _cag_method(options: MethodOptions, shared: _Shared) -> LazyMethod:
    def open_it():
        from infuse.cag import CagSession, ServerCagSession
        from infuse.methods.cag import CagMethod

        if options.cag_cache is None and not options.knowledge:
            raise _skip("cag", "no knowledge files given (--knowledge)")
        if options.base_url:
            if options.cag_cache is not None:
                session = ServerCagSession.open(
                    options.cag_cache,
                    base_url=options.base_url,
                    model=options.model,
                    api_key=options.api_key,
                )
            else:
                session = ServerCagSession.from_files(
                    knowledge_files(options.knowledge),
                    base_url=options.base_url,
                    model=options.model,
                    api_key=options.api_key,
                )
            return CagMethod(session, max_new_tokens=options.max_new_tokens, grounded=options.grounded)
        try:
            if options.cag_cache is not None:
                session = CagSession.open(options.cag_cache, model=shared.kv_base())
            else:
                session = CagSession.from_files(knowledge_files(options.knowledge), shared.kv_base())
        except ContextTooLongError as error:
            facts = {
                "knowledge_tokens": error.knowledge_tokens,
                "context_window": error.context_window,
            }
            raise _skip("cag", str(error), DOES_NOT_FIT, facts) from None
        return CagMethod(session, max_new_tokens=options.max_new_tokens, grounded=options.grounded)

    return LazyMethod("cag", open_it)


def _lora_method(options: MethodOptions, shared: _Shared) -> LazyMethod:
    def open_it():
        chat = shared.adapter()
        # Ask the way the adapter was trained: with the run's system prompt, or none.
        return ModelMethod(
            "lora",
            chat,
            system_prompt=run_setting(options.run_dir, "system_prompt"),
            max_new_tokens=options.max_new_tokens,
            facts={"inference_chat_template": getattr(chat.tokenizer, "chat_template", None)},
        )

    return LazyMethod("lora", open_it, facts={"run_dir": str(options.run_dir)})


def _research_method(options: MethodOptions, shared: _Shared) -> LazyMethod:
    def open_it():
        from infuse.research import Budget, ResearchSession

        kb = shared.knowledge_base("research") if options.kb is not None else None
        if kb is None and not options.search:
            raise _skip("research", "nothing to research in: no knowledge base (--kb/--knowledge) "
                        "and no web search")
        # eval asks many questions: one round, few model calls each
        budget = Budget(depth=1, breadth=2, pages=3, model_calls=8, seconds=120)
        return ResearchSession(shared.base(), kb=kb, search=options.search, budget=budget,
                               max_new_tokens=max(options.max_new_tokens, 128))

    return LazyMethod("research", open_it, facts={"search": options.search or "none"})


def build_methods(
    names: Sequence[str], options: MethodOptions
) -> tuple[list[LazyMethod], list[SkippedMethod]]:
    """The methods named (in the given order, not opened yet) and those that cannot run, with
    reasons. Call a method's `setup()` to open it now (SkipMethod when it cannot run).

    Raises ConfigError for a name that is not one of METHOD_NAMES.
    """
    unknown = [n for n in names if n not in METHOD_NAMES]
    if unknown:
        raise ConfigError(
            f"Unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHOD_NAMES)}."
        )
    shared = _Shared(options)
    methods: list[LazyMethod] = []
    skipped: list[SkippedMethod] = []
    for name in names:
        if name == "base":
            methods.append(_base_method(options, shared))
        elif name == "rag":
            methods.append(_rag_method("rag", options, shared, shared.base))
        elif name == "cag":
            methods.append(_cag_method(options, shared))
        elif name == "research":
            methods.append(_research_method(options, shared))
        elif options.run_dir is None:
            skipped.append(SkippedMethod(name, "no training run given (--run RUN_DIR)"))
        elif name == "lora":
            methods.append(_lora_method(options, shared))
        else:  # lora+rag
            methods.append(_rag_method("lora+rag", options, shared, shared.adapter))
    return methods, skipped

