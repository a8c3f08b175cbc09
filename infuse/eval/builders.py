"""Build the standard methods from options: base, rag, cag, lora, lora+rag.

Each factory imports the piece it needs (infuse.llm, infuse.cag, infuse.rag, infuse.train)
only when the method is set up, and a piece that is missing or cannot run becomes a skip
with its reason. The local base model is loaded once and shared by base, RAG and CAG; the
adapter is loaded once and shared by lora and lora+rag.

RAG plugs in through `MethodOptions.rag`: a function `(chat_model) -> (question -> Answer)`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infuse.answer import Answer
from infuse.errors import CacheError, ConfigError, InfuseError
from infuse.eval.methods import (
    DOES_NOT_FIT,
    MISSING,
    ChatModelMethod,
    FunctionMethod,
    SkipMethod,
    SkippedMethod,
    check_context_fit,
)
from infuse.models import DEFAULT_MODEL

METHOD_NAMES = ("base", "rag", "cag", "lora", "lora+rag")

RagFactory = Callable[[Any], Callable[[str], Answer]]


@dataclass
class MethodOptions:
    """What the standard methods are built from (CLI flags map onto these one to one)."""

    model: str = DEFAULT_MODEL
    base_url: str | None = None
    api_key: str | None = None
    knowledge: list[Path] = field(default_factory=list)  # files CAG loads whole
    run_dir: Path | None = None  # a training run folder (lora, lora+rag)
    rag: RagFactory | None = None  # chat_model -> answer function (see module docstring)
    kb: str | None = None  # knowledge base folder or postgresql:// URL for RAG
    max_new_tokens: int = 64
    device: str | None = None


class _Shared:
    """Loads each model once, on first use."""

    def __init__(self, options: MethodOptions) -> None:
        self.options = options
        self._base = None
        self._adapter = None

    def base(self):
        if self._base is None:
            from infuse.llm import load_chat_model

            o = self.options
            kwargs = {"base_url": o.base_url, "api_key": o.api_key} if o.base_url else {"device": o.device}
            self._base = load_chat_model(o.model, **kwargs)
        return self._base

    def adapter(self):
        if self._adapter is None:
            from infuse.train.runs import load_run_model

            self._adapter = load_run_model(self.options.run_dir, device=self.options.device)
        return self._adapter


def _skip(name: str, reason: str, code: str = MISSING) -> SkipMethod:
    return SkipMethod(SkippedMethod(name, reason, code))


def _run_facts(run_dir: Path) -> dict[str, Any]:
    from infuse.eval.runinfo import load_run

    try:
        run = load_run(run_dir)
    except InfuseError:
        return {"run_dir": str(run_dir)}
    facts: dict[str, Any] = {"run_dir": str(run_dir)}
    if run.training_s is not None:
        facts["training_s"] = run.training_s
    if run.chat_template:
        facts["train_chat_template"] = run.chat_template
    return facts


def _run_setting(run_dir: Path, key: str) -> Any:
    import tomllib

    path = Path(run_dir) / "config.toml"
    try:
        return tomllib.loads(path.read_text(encoding="utf-8")).get(key)
    except (OSError, tomllib.TOMLDecodeError):
        return None


def knowledge_base_rag(kb_location: str | Path, knowledge: Sequence[Path] = (),
                       max_new_tokens: int = 64) -> RagFactory:
    """The standard RAG factory: a knowledge base at `kb_location`, brought up to date with
    the `knowledge` files (unchanged files are not re-indexed), answering through `infuse.rag`."""
    state: dict[str, Any] = {}

    def factory(chat_model) -> Callable[[str], Answer]:
        if "kb" not in state:
            from infuse.knowledge.kb import KnowledgeBase

            kb = KnowledgeBase(kb_location)
            if knowledge:
                kb.add([str(path) for path in knowledge])
            state["kb"] = kb
        from infuse.rag import answer

        return lambda question: answer(
            question, state["kb"], model=chat_model, max_new_tokens=max_new_tokens
        )

    return factory


def _rag_method(name: str, options: MethodOptions, chat_model: Callable[[], Any], facts=None):
    state: dict[str, Callable[[str], Answer]] = {}

    def setup() -> None:
        factory = options.rag
        if factory is None and options.kb is not None:
            factory = knowledge_base_rag(options.kb, options.knowledge, options.max_new_tokens)
        if factory is None:
            raise _skip(name, "no knowledge base to retrieve from (give --knowledge or --kb)")
        state["answer"] = factory(chat_model())

    return FunctionMethod(name, lambda q: state["answer"](q), setup=setup, facts=facts)


def _cag_method(options: MethodOptions, shared: _Shared) -> FunctionMethod:
    state: dict[str, Any] = {}

    def setup() -> None:
        if not options.knowledge:
            raise _skip("cag", "no knowledge files given (--knowledge)")
        if options.base_url:
            raise _skip("cag", "CAG through a server is not wired into eval yet; run without --base-url")
        try:
            from infuse.cag import CagSession
            from infuse.cag.knowledge import knowledge_text, read_knowledge_files, system_message
            from infuse.cag.session import ANSWER_ROOM, QUESTION_ROOM
        except ImportError as error:
            raise _skip("cag", f"infuse.cag is not available ({error})") from None
        chat = shared.base()
        files = [str(Path(p).resolve()) for p in options.knowledge]
        system = system_message(knowledge_text(read_knowledge_files(files)))
        tokens = len(chat.tokenizer(system, add_special_tokens=False)["input_ids"])
        window = chat.context_window
        if window is not None:
            misfit = check_context_fit("cag", tokens, window, reserve_tokens=QUESTION_ROOM + ANSWER_ROOM)
            if misfit:
                raise SkipMethod(misfit)
        try:
            state["session"] = CagSession.build(chat, system, sources=files, model_spec=options.model)
        except CacheError as error:
            code = DOES_NOT_FIT if "context window" in str(error) else MISSING
            raise _skip("cag", str(error), code) from None
        method.facts.update(knowledge_tokens=tokens, context_window=window)

    def answer(question: str) -> Answer:
        return state["session"].ask(question, max_new_tokens=options.max_new_tokens)

    method = FunctionMethod("cag", answer, setup=setup)
    return method


def _lora_method(options: MethodOptions, shared: _Shared) -> ChatModelMethod:
    def load():
        chat = shared.adapter()
        method.facts["inference_chat_template"] = getattr(chat.tokenizer, "chat_template", None)
        return chat

    # Ask the way the adapter was trained: with the run's system prompt, or none.
    system_prompt = _run_setting(options.run_dir, "system_prompt")
    method = ChatModelMethod(
        "lora", load=load, system_prompt=system_prompt, max_new_tokens=options.max_new_tokens,
        facts=_run_facts(options.run_dir),
    )
    return method


def build_methods(
    names: Sequence[str], options: MethodOptions
) -> tuple[list[Any], list[SkippedMethod]]:
    """The methods named (in the given order) and the ones that cannot run, with reasons.

    Raises ConfigError for a name that is not one of METHOD_NAMES.
    """
    unknown = [n for n in names if n not in METHOD_NAMES]
    if unknown:
        raise ConfigError(
            f"Unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHOD_NAMES)}."
        )
    shared = _Shared(options)
    methods: list[Any] = []
    skipped: list[SkippedMethod] = []
    for name in names:
        if name == "base":
            methods.append(ChatModelMethod("base", load=shared.base, max_new_tokens=options.max_new_tokens))
        elif name == "rag":
            methods.append(_rag_method("rag", options, shared.base))
        elif name == "cag":
            methods.append(_cag_method(options, shared))
        elif options.run_dir is None:
            skipped.append(SkippedMethod(name, "no training run given (--run RUN_DIR)"))
        elif name == "lora":
            methods.append(_lora_method(options, shared))
        else:  # lora+rag
            methods.append(_rag_method("lora+rag", options, shared.adapter, _run_facts(options.run_dir)))
    return methods, skipped
