"""`Assistant`: the served methods, one model id each, loaded in the background.

Model ids (what `/v1/models` lists and `ask` accepts):

    infuse-auto               the method the assistant profile names (only with a profile)
    infuse-rag                retrieval over the knowledge base
    infuse-cag                the whole knowledge in the KV cache (only when it fits)
    infuse-base               the base model alone (also answers to the `--model` name; a
                              request's own system turn replaces its default instruction)
    infuse-lora:<run>         a fine-tuned run's adapter alone
    infuse-lora+rag:<run>     the adapter answering from retrieval

rag, cag and base are the method sessions of `infuse.methods` (RagSession, CagMethod,
ModelMethod) over one loaded base model and the served knowledge base object (so RAG sees
every change at once, and CAG is rebuilt when the knowledge changes: `infuse.serve.freshness`);
each run's lora and lora+rag come from `infuse.methods.build_methods`, the builder eval uses.
This module adds no method logic. Methods sharing one loaded model share one
`GenerationWorker`, so each model generates one answer at a time behind its own bounded queue.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infuse.errors import ConfigError
from infuse.serve.schemas import AskResult, EvalSummary, ResearchResult, citation_models
from infuse.serve.settings import ServeSettings
from infuse.serve.workers import GenerationWorker, Job

PREFIX = "infuse-"
LOAD_WAIT_S = 600.0  # how long a synchronous `ask` waits for the models to load
SHORT_NAMES = {"auto": "infuse-auto", "rag": "infuse-rag", "cag": "infuse-cag", "base": "infuse-base"}


@dataclass
class ServedModel:
    """One model id: the method behind it and the worker that runs its generations."""

    id: str
    method: Any
    worker_key: str
    description: str
    facts: dict[str, Any] = field(default_factory=dict)

    def card(self) -> dict[str, Any]:
        """The `/v1/models` entry (OpenAI shape plus infuse's own fields)."""
        return {
            "id": self.id,
            "object": "model",
            "created": 0,
            "owned_by": "infuse",
            "method": getattr(self.method, "name", self.id),
            "description": self.description,
        }


def finished_runs(runs_dir: Path | None) -> list[Path]:
    """Run folders under `runs_dir` (or it itself) that hold a finished adapter."""
    if runs_dir is None:
        return []
    runs_dir = Path(runs_dir).expanduser()
    if not runs_dir.is_dir():
        raise ConfigError(f"--runs {runs_dir} is not a folder of training runs.")
    candidates = [runs_dir, *sorted(path for path in runs_dir.iterdir() if path.is_dir())]
    return [
        path
        for path in candidates
        if (path / "config.toml").is_file() and (path / "adapter_config.json").is_file()
    ]


def method_options(settings: ServeSettings, **overrides: Any):
    """A `MethodOptions` from the serve settings (only the fields the class has)."""
    from infuse.methods import MethodOptions

    wanted = {
        "model": settings.model,
        "base_url": settings.base_url,
        "api_key": settings.api_key,
        "kb": settings.kb,
        "cag_cache": settings.cag_cache,
        "max_new_tokens": settings.max_new_tokens,
        **overrides,
    }
    names = {item.name for item in dataclasses.fields(MethodOptions)}
    return MethodOptions(**{key: value for key, value in wanted.items() if key in names and value is not None})


class Assistant:
    """Every served method, loaded once in the background; `submit` queues an answer."""

    def __init__(
        self,
        settings: ServeSettings,
        library: Any = None,
        *,
        methods: dict[str, ServedModel] | None = None,
    ):
        self.settings = settings
        self.library = library
        self.base_model = None
        self.fresh_cag = None
        self.models: dict[str, ServedModel] = dict(methods or {})
        self.skipped: list[dict[str, Any]] = []
        self.workers: dict[str, GenerationWorker] = {}
        self.profile = None
        self._status = "ready" if methods is not None else "loading"
        self._error: str | None = None
        self._loaded = threading.Event()
        self._thread: threading.Thread | None = None
        self._started_at = time.time()
        if methods is not None:
            self._make_workers()
            self._loaded.set()

    # lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        """Load the methods on a background thread (the server answers 503 until done)."""
        if self._loaded.is_set() or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._load, name="infuse-load", daemon=True)
        self._thread.start()

    def wait_ready(self, timeout: float | None = None) -> bool:
        self._loaded.wait(timeout)
        return self._status == "ready"

    def _load(self) -> None:
        try:
            self._build()
            self._make_workers()
            self._status = "ready"
        except Exception as error:  # noqa: BLE001 - reported by /ready and every request
            self._status, self._error = "failed", f"{type(error).__name__}: {error}"
        finally:
            self._loaded.set()

    def _build(self) -> None:
        settings = self.settings
        names = settings.methods or ["rag", "cag", "base", "lora", "lora+rag"]
        self._build_base([name for name in names if name in ("rag", "cag", "base")])
        run_names = [name for name in names if name in ("lora", "lora+rag")]
        if settings.kb is None:
            run_names = [name for name in run_names if name != "lora+rag"]
        if run_names:
            self._build_runs(run_names)
        if settings.profile is not None:
            self._add_auto(settings.profile)

    def _build_base(self, names: list[str]) -> None:
        """rag, cag and base over one loaded base model (and the served knowledge base)."""
        if not names:
            return
        from infuse import rag
        from infuse.llm import load_chat_model
        from infuse.methods import ModelMethod, RagSession

        settings = self.settings
        persona = settings.persona
        model = load_chat_model(settings.model, base_url=settings.base_url, api_key=settings.api_key)
        self.base_model = model
        built: dict[str, Any] = {}
        if "rag" in names:
            if self.library is None:
                self.skipped.append({"name": "rag", "reason": "no knowledge base (--kb)"})
            else:
                prompt = f"{persona}\n\n{rag.SYSTEM_PROMPT}" if persona else rag.SYSTEM_PROMPT
                built["rag"] = RagSession(
                    self.library.kb, model, max_new_tokens=settings.max_new_tokens, system_prompt=prompt,
                    grounded=settings.grounded,
                )
        cag_worker = "base"
        if "cag" in names:
            from infuse.llm.local import LocalChatModel

            cag_model: Any = model
            if not settings.base_url and not isinstance(model, LocalChatModel):
                # CAG keeps the knowledge in a transformers KV cache: with another local backend
                # (llama.cpp) it loads its own transformers copy, generating on its own worker.
                cag_model, cag_worker = settings.model, "cag"
            try:
                cag = self._build_cag(cag_model)
            except Exception as error:  # noqa: BLE001 - one method failing leaves the others
                self.skipped.append({"name": "cag", "code": "failed", "reason": f"{type(error).__name__}: {error}"})
                cag = None
            if cag is not None:
                built["cag"] = cag
        if "base" in names:
            kwargs = {"system_prompt": persona} if persona else {}
            built["base"] = ModelMethod("base", model, max_new_tokens=settings.max_new_tokens, **kwargs)
        for name in ("rag", "cag", "base"):
            if name in built:
                method = built[name]
                worker = cag_worker if name == "cag" else "base"
                self.models[SHORT_NAMES[name]] = ServedModel(
                    SHORT_NAMES[name], method, worker, _describe(name), dict(getattr(method, "facts", {}))
                )

    def _build_cag(self, model: Any):
        """CAG from --cag-cache, or from the knowledge base's files (rebuilt when they change);
        None (with the reason in `skipped`) when the knowledge does not fit or is missing."""
        from infuse.errors import ContextTooLongError
        from infuse.methods import CagMethod

        settings = self.settings
        instructions = {}
        if settings.persona:
            from infuse.cag.knowledge import DEFAULT_INSTRUCTIONS

            instructions = {"instructions": f"{settings.persona}\n\n{DEFAULT_INSTRUCTIONS}"}

        def build(files):
            if settings.base_url:
                from infuse.cag import ServerCagSession

                session = ServerCagSession.from_files(
                    files, base_url=settings.base_url, model=settings.model, api_key=settings.api_key
                )
            else:
                from infuse.cag import CagSession

                session = CagSession.from_files(files, model, **instructions)
            return CagMethod(session, max_new_tokens=settings.max_new_tokens, grounded=settings.grounded)

        try:
            if settings.cag_cache is not None:
                from infuse.cag import CagSession

                return CagMethod(CagSession.open(settings.cag_cache, model=model),
                                 max_new_tokens=settings.max_new_tokens, grounded=settings.grounded)
            if self.library is None:
                self.skipped.append({"name": "cag", "reason": "no knowledge: give --kb or --cag-cache"})
                return None
            from infuse.serve.freshness import FreshCag, knowledge_files

            if not knowledge_files(self.library.kb):
                self.skipped.append({"name": "cag", "reason": "the knowledge base holds no files to load"})
                return None
            fresh = FreshCag(self.library.kb, build)
            self.fresh_cag = fresh
            return fresh
        except ContextTooLongError as error:
            self.skipped.append({"name": "cag", "code": "does_not_fit", "reason": str(error)})
            return None

    def _build_runs(self, names: list[str]) -> None:
        """lora and lora+rag for each finished run under --runs (one adapter model per run)."""
        from infuse.methods import SkipMethod, build_methods

        for run_dir in finished_runs(self.settings.runs):
            built, skipped = build_methods(names, method_options(self.settings, run_dir=run_dir))
            self.skipped += [_skip_dict(item) for item in skipped]
            for method in built:
                try:
                    method.setup()
                except SkipMethod as skip:
                    self.skipped.append(_skip_dict(skip.skip))
                    continue
                model_id = f"{PREFIX}{method.name}:{run_dir.name}"
                self.models[model_id] = ServedModel(
                    model_id, method, f"run:{run_dir}", _describe(method.name, run_dir.name),
                    dict(getattr(method, "facts", {})),
                )

    def _add_auto(self, profile_path: Path) -> None:
        from infuse.methods.auto import AutoMethod
        from infuse.methods.profile import AssistantProfile

        self.profile = AssistantProfile.read(profile_path)
        by_method = {served.method.name: served.method for served in self.models.values()
                     if ":" not in served.id}
        for served in self.models.values():
            if ":" in served.id:
                by_method.setdefault(served.method.name, served.method)
        auto = AutoMethod(self.profile, by_method)
        winner = self.models.get(SHORT_NAMES.get(auto.winner.name, ""), None)
        worker_key = winner.worker_key if winner is not None else "base"
        self.models = {
            "infuse-auto": ServedModel(
                "infuse-auto", auto, worker_key,
                f"auto: serves {auto.winner.name}, the method the last eval found best "
                f"by {self.profile.criterion}",
                {"serves": auto.winner.name, "fallback": auto.fallback_name},
            ),
            **self.models,
        }

    def _make_workers(self) -> None:
        for served in self.models.values():
            if served.worker_key not in self.workers:
                self.workers[served.worker_key] = GenerationWorker(served.worker_key, self.settings.queue_size)
        if self.fresh_cag is not None:
            self.fresh_cag.schedule = self._schedule_on_base
            self.fresh_cag.watch()
        self._cag_worker = self.models["infuse-cag"].worker_key if "infuse-cag" in self.models else "base"

    def _schedule_on_base(self, work) -> None:
        """Run `work` on the base model's worker (between answers); retry while its queue is full."""
        from infuse.serve.workers import QueueFullError

        def run(_on_token):
            work()

        def submit() -> None:
            try:
                self.workers[getattr(self, "_cag_worker", "base")].submit(Job(run=run))
            except QueueFullError:
                threading.Timer(1.0, submit).start()

        submit()

    def close(self) -> None:
        """Stop the workers and close every method."""
        for worker in self.workers.values():
            worker.close()
        if self.fresh_cag is not None:
            self.fresh_cag.close()
        for served in self.models.values():
            close = getattr(served.method, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:  # noqa: BLE001 - closing is best effort at shutdown
                    pass

    # state ------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """What `/ready` says: loading, ready (with the model ids) or failed (with the reason)."""
        state: dict[str, Any] = {"status": self._status, "models": list(self.models),
                                 "persona": self.settings.persona}
        if self._error:
            state["error"] = self._error
        if self.skipped:
            state["skipped"] = self.skipped
        state["queues"] = {
            key: {"waiting": worker.waiting, "running": worker.running is not None,
                  "completed": worker.completed, "cancelled": worker.cancelled,
                  "refused": worker.refused}
            for key, worker in self.workers.items()
        }
        return state

    @property
    def status(self) -> str:
        return self._status

    @property
    def error(self) -> str | None:
        return self._error

    def resolve(self, model_id: str) -> ServedModel:
        """The served model for an id (short names `rag`, `auto`... accepted); KeyError naming
        the ids there are."""
        served = self.models.get(model_id) or self.models.get(SHORT_NAMES.get(model_id, ""))
        if served is None and model_id == self.settings.model:
            # the base model's own name (`--model`) answers as the plain model, as a llama.cpp
            # or Ollama server would: a client pointed here (`infuse quickstart --base-url`)
            # can use the same name for the server and for a local fine-tune
            served = self.models.get(SHORT_NAMES["base"])
        if served is None:
            raise KeyError(
                f"No model {model_id!r} here; this server has {', '.join(self.models) or 'none yet'}."
            )
        return served

    # answering --------------------------------------------------------------------------
    def submit(
        self,
        model_id: str,
        question: str,
        *,
        history: list[dict[str, str]] | None = None,
        max_new_tokens: int | None = None,
        listener=None,
    ) -> Job:
        """Queue one answer on the model's worker; QueueFullError when its queue is full.

        `listener(item)` is called on the worker thread with each text piece, then the end marker.
        """
        served = self.resolve(model_id)
        method = served.method
        turns = list(history or [])
        tokens = max_new_tokens or self.settings.max_new_tokens

        def run(on_token):
            return method.answer(question, history=turns or None, max_new_tokens=tokens, on_token=on_token)

        return self.workers[served.worker_key].submit(Job(run=run, listener=listener))

    def ask_result(
        self, question: str, method: str = "auto", *, history=None, max_new_tokens: int | None = None
    ) -> AskResult:
        """Answer synchronously (MCP's `ask`): the answer, citations and the method that answered."""
        self.start()
        if not self.wait_ready(timeout=LOAD_WAIT_S):
            raise ConfigError(f"The assistant is {self._status}: {self._error or 'still loading'}.")
        served = self.resolve(method)
        answer = self.submit(served.id, question, history=history, max_new_tokens=max_new_tokens).wait()
        return AskResult(
            answer=answer.text,
            method=answer.method,
            requested_method=served.id.removeprefix(PREFIX),
            no_answer=bool(answer.no_answer),
            fallback_from=answer.facts.get("fallback_from"),
            citations=citation_models(answer),
            timings=dict(answer.timings),
        )

    def research_result(self, question: str, *, depth: int = 1, breadth: int = 2,
                        max_pages: int = 3) -> ResearchResult:
        """Research synchronously (MCP's `research`): knowledge base, then the web when the
        server has --search; a report with checked citations."""
        from infuse.research import Budget, ResearchSession

        self.start()
        if not self.wait_ready(timeout=LOAD_WAIT_S):
            raise ConfigError(f"The assistant is {self._status}: {self._error or 'still loading'}.")
        if self.base_model is None:
            raise ConfigError("research needs the base model: serve with rag, cag or base among --methods.")
        for name, value in (("depth", depth), ("breadth", breadth), ("max_pages", max_pages)):
            if not 1 <= value <= 5:
                raise ValueError(f"{name} {value}: give 1 to 5.")
        session = ResearchSession(
            self.base_model,
            kb=self.library.kb if self.library is not None else None,
            search=self.settings.search,
            budget=Budget(depth=depth, breadth=breadth, pages=max_pages, model_calls=6 * depth + 4),
        )
        answer = session.answer(question)
        return ResearchResult(
            report=answer.text,
            no_answer=answer.no_answer,
            citations=citation_models(answer),
            dropped_citations=answer.facts["dropped_citations"],
            sources_read=len(answer.facts["sources_read"]),
            model_calls=answer.facts["model_calls"],
            timings=dict(answer.timings),
        )

    def eval_summary(self) -> EvalSummary:
        """The profile's verdict, or why there is none."""
        if self.profile is None:
            return EvalSummary(
                available=False,
                message="No assistant profile: run `infuse eval` and start the server with --profile FILE.",
            )
        profile = self.profile.to_dict()
        return EvalSummary(
            available=True,
            profile_path=str(self.settings.profile),
            winner=profile["winner"],
            criterion=profile["criterion"],
            methods=profile["methods"],
            not_distinguishable=profile["not_distinguishable"],
            message=profile["verdict"],
        )


def _describe(name: str, run: str | None = None) -> str:
    texts = {
        "rag": "retrieval-augmented: answers from the best passages of the knowledge base, with citations",
        "cag": "cache-augmented: the whole knowledge in the model's KV cache",
        "base": "the base model alone, without the knowledge",
        "lora": f"the fine-tuned adapter of run {run} alone",
        "lora+rag": f"the fine-tuned adapter of run {run}, answering from retrieved passages",
    }
    return texts.get(name, name)


def _skip_dict(skip: Any) -> dict[str, Any]:
    if hasattr(skip, "to_dict"):
        return skip.to_dict()
    return {"name": getattr(skip, "name", str(skip)), "reason": getattr(skip, "reason", str(skip))}
