"""`evaluate()`: the Python twin of `infuse eval` — questions in, results + report out."""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from infuse import __version__
from infuse.eval.diagnosis import diagnose
from infuse.eval.questions import EvalQuestion, load_questions
from infuse.eval.results import EvalResults
from infuse.eval.runinfo import RunInfo, load_run
from infuse.eval.runner import run_eval
from infuse.eval.verdict import compare_methods, recommend
from infuse.methods import DEFAULT_METHODS, MethodOptions, SkippedMethod, build_methods
from infuse.methods.build import knowledge_files


def evaluate(
    questions: str | Path | Sequence[EvalQuestion],
    *,
    methods: Sequence[str] = DEFAULT_METHODS,
    options: MethodOptions | None = None,
    extra_methods: Sequence[Any] = (),
    limit: int | None = None,
    tag: str | None = None,
    judge=None,
    output_dir: str | Path | None = None,
    on_progress=None,
    prefer: str = "accuracy",
    forgetting: bool = True,
) -> EvalResults:
    """Run the question set through the named methods (plus `extra_methods`), diagnose, report.

    `questions` is a question file or already-loaded questions. `options.knowledge` may name
    files, folders or globs, as on the command line; when it is given and `options.kb` is not,
    RAG retrieves from a knowledge base built from it (`output_dir/kb`, or a temporary one).
    `options.run_dir` adds the training curve and run facts; `judge` is a ChatModel that grades
    answers 1-5; `on_progress(done, total, method=...)` reports each answer; `prefer`
    ("accuracy" or "fast") is what the recommendation optimises; with `forgetting` (and both the
    base and lora methods) the packaged general questions check what the adapter forgot
    (`results.meta["forgetting"]`, diagnosis `forgetting`). When `output_dir` is given, results.json and report.html are written there and
    their paths put in `results.meta["files"]`, with the assistant profile (`profile.json`) that
    `infuse serve --profile` reads.
    """
    options = options or MethodOptions()
    if output_dir is not None:  # refused now, not after every question was answered
        from infuse.files import check_writable_folder

        check_writable_folder(output_dir, setting="--output folder")
    if isinstance(questions, (str, Path)):
        source = str(questions)
        items = load_questions(questions, limit=limit, tag=tag)
    else:
        source = "(given)"
        items = [q for q in questions if tag is None or tag in q.tags][:limit]
    files = knowledge_files(options.knowledge) if options.knowledge else []
    skipped_files = _skipped_files(options.knowledge) if options.knowledge else []
    with ExitStack() as cleanup:
        if options.knowledge and options.kb is None:
            kb_dir = (
                Path(output_dir) / "kb"
                if output_dir is not None
                else Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="infuse-kb-")))
            )
            options = dataclasses.replace(options, kb=str(kb_dir))
        built, skipped = build_methods(list(methods), options)
        for method in built:
            cleanup.callback(method.close)
        run: RunInfo | None = load_run(options.run_dir) if options.run_dir else None
        if run is not None:
            _add_run_facts(built, run)
        meta = {
            "infuse_version": __version__,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "questions_file": source,
            "model": options.model,
            "base_url": options.base_url,
            "knowledge": [str(p) for p in files],
            "kb": options.kb,
            "skipped_files": skipped_files,
            "run_dir": str(options.run_dir) if options.run_dir else None,
            "judge": getattr(judge, "name", None) if judge is not None else None,
        }
        results = _run(items, [*built, *extra_methods], skipped, judge, on_progress, meta)
        by_name = {method.name: method for method in built}
        ran = {m.name for m in results.methods}
        if forgetting and {"base", "lora"} <= ran and {"base", "lora"} <= set(by_name):
            from infuse.eval.forgetting import check_forgetting

            results.meta["forgetting"] = check_forgetting(
                by_name["base"], by_name["lora"], max_new_tokens=options.max_new_tokens,
                on_progress=on_progress,  # minutes on a CPU: never silent after "done"
            ).to_dict()
    if run is not None:
        results.training_curve = run.curve()
    compare_methods(results)
    recommend(results, prefer=prefer)
    results.findings = [finding.to_dict() for finding in diagnose(results, run)]
    if output_dir is not None:
        from infuse.eval.report import write_report

        output_dir = Path(output_dir)
        results.meta["files"] = {
            "json": str(output_dir / "results.json"), "html": str(output_dir / "report.html")
        }
        write_report(results, output_dir)
        if results.methods:
            results.meta["files"]["profile"] = str(_write_profile(results, options, output_dir, source))
    return results


def _write_profile(results: EvalResults, options: MethodOptions, output_dir: Path, source: str) -> Path:
    """The assistant profile beside the report: the recommended method and how to rebuild it
    (`infuse serve --profile` serves it as infuse-auto)."""
    from infuse.methods.profile import profile_from_eval

    rebuild = {
        "model": options.model,
        "base_url": options.base_url,
        # A knowledge base built in a temporary folder is gone: rebuild it from `knowledge`.
        "kb": options.kb if options.kb and Path(options.kb).exists() else None,
        "knowledge": [str(p) for p in options.knowledge],
        "run_dir": str(options.run_dir) if options.run_dir else None,
        "cag_cache": str(options.cag_cache) if options.cag_cache else None,
        "max_new_tokens": options.max_new_tokens,
        "questions_file": source,
    }
    return profile_from_eval(results, rebuild=rebuild).write(output_dir / "profile.json")


def _run(items, methods, skipped, judge, on_progress, meta) -> EvalResults:
    started = time.perf_counter()
    results = run_eval(items, methods, skipped=skipped, judge=judge, on_progress=on_progress,
                       meta=meta)
    results.meta["eval_s"] = round(time.perf_counter() - started, 3)
    return results


def _skipped_files(paths) -> list[dict[str, str]]:
    """Files under the knowledge paths that the one reader leaves out, each with its reason."""
    from infuse.knowledge.reading import find_files

    return find_files([str(path) for path in paths])[1]


def _add_run_facts(methods: Sequence[Any], run: RunInfo) -> None:
    """The training run's numbers on the methods that use its adapter (lora, lora+rag)."""
    for method in methods:
        if method.name not in ("lora", "lora+rag"):
            continue
        if run.training_s is not None:
            method.facts["training_s"] = run.training_s
        if run.chat_template:
            method.facts["train_chat_template"] = run.chat_template


__all__ = ["EvalResults", "MethodOptions", "SkippedMethod", "evaluate"]
