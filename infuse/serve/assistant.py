"""`Assistant`: the served methods, one model id each, loaded in the background.

Model ids (what `/v1/models` lists and `ask` accepts):

    infuse-auto               the method the assistant profile names (only with a profile)
    infuse-rag                retrieval over the knowledge base
    infuse-cag                the whole knowledge in the KV cache (only when it fits)
    infuse-base               the base model alone
    infuse-lora:<run>         a fine-tuned run's adapter alone
    infuse-lora+rag:<run>     the adapter answering from retrieval

Methods come from `infuse.methods.build_methods` (the same builder eval uses); this module adds
no method logic. Methods sharing one loaded model share one `GenerationWorker`, so each model
generates one answer at a time behind its own bounded queue.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infuse.errors import ConfigError
from infuse.serve.schemas import AskResult, EvalSummary, citation_models
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
        "system_prompt": settings.persona,
        "persona": settings.persona,
        **overrides,
    }
    names = {item.name for item in dataclasses.fields(MethodOptions)}
    return MethodOptions(**{key: value for key, value in wanted.items() if key in names and value is not None})


class Assistant:
    """Every served method, loaded once in the background; `submit` queues an answer."""

    def __init__(self, settings: ServeSettings, *, methods: dict[str, ServedModel] | None = None):
        self.settings = settings
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
        from infuse.methods import build_methods

        settings = self.settings
        names = settings.methods or ["rag", "cag", "base"]
        base_names = [name for name in names if name in ("rag", "cag", "base")]
        if settings.kb is None:
            base_names = [name for name in base_names if name != "rag"]
        built, skipped = build_methods(base_names, method_options(settings))
        self.skipped += [_skip_dict(item) for item in skipped]
        for method in built:
            model_id = SHORT_NAMES.get(method.name, PREFIX + method.name)
            self.models[model_id] = ServedModel(
                model_id, method, "base", _describe(method.name), dict(getattr(method, "facts", {}))
            )
        run_names = [name for name in names if name in ("lora", "lora+rag")] or ["lora", "lora+rag"]
        if settings.kb is None:
            run_names = [name for name in run_names if name != "lora+rag"]
        for run_dir in finished_runs(settings.runs):
            built, skipped = build_methods(run_names, method_options(settings, run_dir=run_dir))
            self.skipped += [_skip_dict(item) for item in skipped]
            for method in built:
                model_id = f"{PREFIX}{method.name}:{run_dir.name}"
                self.models[model_id] = ServedModel(
                    model_id, method, f"run:{run_dir}", _describe(method.name, run_dir.name),
                    dict(getattr(method, "facts", {})),
                )
        if settings.profile is not None:
            self._add_auto(settings.profile)

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

    def close(self) -> None:
        """Stop the workers and close every method."""
        for worker in self.workers.values():
            worker.close()
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
        state: dict[str, Any] = {"status": self._status, "models": list(self.models)}
        if self._error:
            state["error"] = self._error
        if self.skipped:
            state["skipped"] = self.skipped
        state["queues"] = {
            key: {"waiting": worker.waiting, "running": worker.running is not None,
                  "completed": worker.completed, "cancelled": worker.cancelled}
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
