"""`evaluate()`: the Python twin of `infuse eval` — questions in, results + report out."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from infuse import __version__
from infuse.eval.builders import METHOD_NAMES, MethodOptions, build_methods
from infuse.eval.diagnosis import diagnose
from infuse.eval.methods import SkippedMethod
from infuse.eval.questions import EvalQuestion, load_questions
from infuse.eval.results import EvalResults
from infuse.eval.runinfo import RunInfo, load_run
from infuse.eval.runner import run_eval


def evaluate(
    questions: str | Path | Sequence[EvalQuestion],
    *,
    methods: Sequence[str] = METHOD_NAMES,
    options: MethodOptions | None = None,
    extra_methods: Sequence[Any] = (),
    limit: int | None = None,
    tag: str | None = None,
    judge=None,
    output_dir: str | Path | None = None,
    progress: bool = True,
    prefer: str = "accuracy",
) -> EvalResults:
    """Run the question set through the named methods (plus `extra_methods`), diagnose, report.

    `questions` is a question file or already-loaded questions; `options.run_dir` adds the
    training curve and run facts; `judge` is a ChatModel that grades answers 1-5. When
    `output_dir` is given, results.json and report.html are written there and their paths put
    in `results.meta["files"]`, with the assistant profile (`profile.json`: the winner by
    `prefer`, "accuracy" or "fast", with 95% intervals) that `infuse serve --profile` reads.
    """
    options = options or MethodOptions()
    if isinstance(questions, (str, Path)):
        source = str(questions)
        items = load_questions(questions, limit=limit, tag=tag)
    else:
        source = "(given)"
        items = [q for q in questions if tag is None or tag in q.tags][:limit]
    built, skipped = build_methods(list(methods), options)
    run: RunInfo | None = load_run(options.run_dir) if options.run_dir else None
    meta = {
        "infuse_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "questions_file": source,
        "model": options.model,
        "base_url": options.base_url,
        "knowledge": [str(p) for p in options.knowledge],
        "run_dir": str(options.run_dir) if options.run_dir else None,
        "judge": getattr(judge, "name", None) if judge is not None else None,
    }
    started = time.perf_counter()
    results = run_eval(
        items, [*built, *extra_methods], skipped=skipped, judge=judge, progress=progress, meta=meta
    )
    results.meta["eval_s"] = round(time.perf_counter() - started, 3)
    if run is not None:
        results.training_curve = run.curve()
    results.findings = [finding.to_dict() for finding in diagnose(results, run)]
    if output_dir is not None:
        from infuse.eval.report import write_report

        output_dir = Path(output_dir)
        results.meta["files"] = {
            "json": str(output_dir / "results.json"), "html": str(output_dir / "report.html")
        }
        write_report(results, output_dir)
        if results.methods:
            from infuse.eval.intervals import profile_from_results

            rebuild = {
                "model": options.model,
                "base_url": options.base_url,
                "kb": options.kb,
                "knowledge": [str(p) for p in options.knowledge],
                "run_dir": str(options.run_dir) if options.run_dir else None,
                "cag_cache": str(getattr(options, "cag_cache", None) or "") or None,
                "max_new_tokens": options.max_new_tokens,
                "questions_file": source,
            }
            profile = profile_from_results(results, criterion=prefer, rebuild=rebuild)
            results.meta["files"]["profile"] = str(profile.write(output_dir / "profile.json"))
    return results


__all__ = ["EvalResults", "MethodOptions", "SkippedMethod", "evaluate"]
