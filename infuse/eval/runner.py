"""Run one question set through every method, score each answer, and summarise per method."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import PurePath
from typing import Any

from infuse.answer import Answer
from infuse.errors import InfuseError
from infuse.eval import scoring
from infuse.eval.methods import FAILED, Method, SkipMethod, SkippedMethod
from infuse.eval.questions import EvalQuestion
from infuse.eval.results import EvalResults, QuestionResult, summarize_method


def _same_source(cited: str, expected: str) -> bool:
    cited_path, expected_path = PurePath(cited.split("#")[0]), PurePath(expected)
    if cited_path.name != expected_path.name:
        return False
    return cited_path.parts[-len(expected_path.parts) :] == expected_path.parts


def score_answer(
    question: EvalQuestion,
    answer: Answer,
    *,
    total_s: float,
    judge=None,
) -> QuestionResult:
    """Score one Answer against the question's references (and grade it when a judge is given).

    An answerable question is right when the answer holds a reference and states no other
    value of its kind; an unanswerable one is right when the method declined.
    """
    refs = question.references
    cited = [c.source for c in answer.citations]
    context_hit = source_hit = retrieval_hit = None
    texts = [c.text for c in answer.citations if c.text]
    given = [
        p.get("text", "")
        for p in answer.facts.get("passages", [])
        if isinstance(p, dict) and p.get("given", True)
    ]
    if texts and refs:
        context_hit = scoring.answer_in_context(texts, refs)
    if any(given) and refs:
        retrieval_hit = scoring.answer_in_context(given, refs)
    if cited and question.source:
        source_hit = any(_same_source(s, question.source) for s in cited)
    no_answer = bool(answer.no_answer) or scoring.is_no_answer(answer.text)
    declined = no_answer and answer.facts.get("declined_because")  # the method's own reason
    judge_score = None
    if judge is not None and refs:
        judge_score = scoring.judge_answer(judge, question.question, refs, answer.text).score
    contradiction = bool(refs) and scoring.contradicts(answer.text, refs, question.question)
    if not question.answerable:
        correct = float(no_answer)
    elif no_answer or contradiction:
        correct = 0.0
    else:
        correct = scoring.contains_answer(answer.text, refs)
    return QuestionResult(
        question_id=question.id,
        method=answer.method,
        answer=answer.text,
        exact_match=scoring.exact_match(answer.text, refs) if refs else float(no_answer),
        f1=round(scoring.token_f1(answer.text, refs), 4) if refs else float(no_answer),
        correct=correct,
        no_answer=no_answer,
        answerable=question.answerable,
        short_match=scoring.short_answer_match(answer.text, refs) if refs else 0.0,
        contradiction=contradiction,
        retrieval_hit=retrieval_hit,
        declined_because=str(declined) if declined else None,
        withheld_answer=str(answer.facts["raw_answer"]) if declined and answer.facts.get("raw_answer") else None,
        total_s=round(total_s, 4),
        time_to_first_token_s=(
            round(answer.timings["time_to_first_token_s"], 4)
            if answer.timings.get("time_to_first_token_s") is not None
            else None
        ),
        context_hit=context_hit,
        source_hit=source_hit,
        judge_score=judge_score,
        cited_sources=cited,
    )


def _failed_result(question: EvalQuestion, method: str, error: Exception, total_s: float) -> QuestionResult:
    # An error is never a decline: it counts wrong on every kind of question.
    return QuestionResult(
        question_id=question.id, method=method, answer="", exact_match=0.0, f1=0.0, correct=0.0,
        no_answer=False, total_s=round(total_s, 4), error=str(error), answerable=question.answerable,
    )


def run_eval(
    questions: Sequence[EvalQuestion],
    methods: Sequence[Method],
    *,
    skipped: Sequence[SkippedMethod] = (),
    judge=None,
    reference_method: str | None = None,
    on_progress: Callable[..., None] | None = None,
    meta: dict[str, Any] | None = None,
) -> EvalResults:
    """Ask every method every question; return scores, timings, wins/losses and skips.

    A method whose `setup()` fails becomes a skip with the error as its reason; an InfuseError
    on one question is recorded on that question (scored wrong) and the run goes on.
    `reference_method` (default: "base" when present, else the first method) is what wins
    and losses are counted against. `on_progress(done, total, method=name)` is called after
    each answer (and once per method as it starts).
    """
    questions = list(questions)
    skips = list(skipped)
    summaries, per_question = [], []
    total = len(questions) * len(methods)
    done = 0

    def report(method_name: str) -> None:
        if on_progress is not None:
            on_progress(done, total, method=method_name)

    for method in methods:
        report(method.name)
        setup_s = None
        if hasattr(method, "setup"):
            started = time.perf_counter()
            try:
                method.setup()
            except SkipMethod as skip:
                skips.append(skip.skip)
                done += len(questions)
                report(method.name)
                continue
            except Exception as error:  # one broken method must not sink the comparison
                skips.append(SkippedMethod(method.name, f"setup failed: {error}", FAILED))
                done += len(questions)
                report(method.name)
                continue
            setup_s = time.perf_counter() - started
        rows = []
        for question in questions:
            started = time.perf_counter()
            try:
                answer = method.answer(question.question)
                elapsed = time.perf_counter() - started
                answer.method = method.name
                rows.append(score_answer(question, answer, total_s=elapsed, judge=judge))
            except InfuseError as error:
                rows.append(_failed_result(question, method.name, error, time.perf_counter() - started))
            done += 1
            report(method.name)
        per_question.extend(rows)
        summaries.append(
            summarize_method(method.name, rows, setup_s=setup_s, facts=getattr(method, "facts", None))
        )
    results = EvalResults(
        questions=questions, methods=summaries, per_question=per_question, skipped=skips,
        meta=dict(meta or {}),
    )
    count_wins(results, reference_method)
    return results


def count_wins(results: EvalResults, reference_method: str | None = None) -> None:
    """Fill each summary's wins/losses against the reference method (in place)."""
    names = [m.name for m in results.methods]
    if reference_method is None:
        reference_method = "base" if "base" in names else (names[0] if names else None)
    results.reference_method = reference_method
    if reference_method not in names:
        return
    reference = {r.question_id: r.correct for r in results.results_for(reference_method)}
    for summary in results.methods:
        mine = {r.question_id: r.correct for r in results.results_for(summary.name)}
        summary.wins = sum(1 for q, ok in mine.items() if ok and not reference.get(q))
        summary.losses = sum(1 for q, ok in mine.items() if not ok and reference.get(q))
