"""Paired-bootstrap intervals and the assistant profile eval writes from them."""

from __future__ import annotations

import random

import pytest

from infuse.eval.intervals import (
    aligned_scores,
    indistinguishable_pairs,
    method_intervals,
    paired_difference,
    profile_from_results,
)
from infuse.eval.methods import SkippedMethod  # noqa: F401  (eval package imports cleanly)
from infuse.eval.results import EvalResults, QuestionResult, summarize_method


def _row(question: int, method: str, correct: float, total_s: float) -> QuestionResult:
    return QuestionResult(
        question_id=f"q{question}", method=method, answer="", exact_match=correct, f1=correct,
        correct=correct, no_answer=False, total_s=total_s,
    )


def _results(rates: dict[str, float], latencies: dict[str, float], questions: int = 80, seed: int = 7):
    rng = random.Random(seed)
    rows = []
    for question in range(questions):
        draw = rng.random()  # the same draw for every method: paired, like real questions
        for method, rate in rates.items():
            rows.append(_row(question, method, 1.0 if draw < rate else 0.0, latencies[method]))
    summaries = [summarize_method(name, [r for r in rows if r.method == name]) for name in rates]
    return EvalResults(questions=[], methods=summaries, per_question=rows)


def test_interval_covers_mean_and_narrows_with_more_questions():
    few = method_intervals({"a": [1, 0] * 10})["a"]
    many = method_intervals({"a": [1, 0] * 200})["a"]
    assert few.low < 0.5 < few.high and few.mean == 0.5
    assert (many.high - many.low) < (few.high - few.low) / 2


def test_paired_difference_sees_a_consistent_small_gain():
    base = [float(i % 2) for i in range(100)]
    better = list(base)
    for index in range(1, 100, 10):  # better is right on 10 questions base missed, never worse
        better[index - 1] = 1.0
    difference = paired_difference({"better": better, "base": base}, "better", "base")
    assert difference.mean == pytest.approx(0.10)
    assert difference.low > 0  # paired: the gain is certain although the scores' intervals overlap
    intervals = method_intervals({"better": better, "base": base})
    assert intervals["better"].overlaps(intervals["base"])


def test_unequal_question_counts_are_refused():
    with pytest.raises(ValueError, match="same questions"):
        method_intervals({"a": [1, 0], "b": [1]})


def test_aligned_scores_keep_only_shared_questions():
    rows = [_row(1, "a", 1, 1), _row(1, "b", 0, 1), _row(2, "a", 1, 1)]
    assert aligned_scores(rows, ["a", "b"]) == {"a": [1.0], "b": [0.0]}


def test_profile_picks_the_clearly_better_method():
    results = _results({"rag": 0.9, "base": 0.2, "cag": 0.5}, {"rag": 1.0, "base": 0.5, "cag": 0.8})
    profile = profile_from_results(results)
    assert profile.winner == "rag"
    rag, base = profile.method("rag"), profile.method("base")
    assert rag.low > base.high  # the intervals exclude the loser
    assert profile.tied_with == []
    assert profile.runner_up == "cag"  # other evidence than retrieval
    assert "rag wins by accuracy" in profile.verdict()


def test_profile_says_when_two_methods_are_tied():
    results = _results({"rag": 0.6, "cag": 0.6, "base": 0.1}, {"rag": 2.0, "cag": 0.5, "base": 0.3})
    profile = profile_from_results(results)
    assert ["cag", "rag"] in profile.not_distinguishable
    assert set(profile.tied_with) == {"cag" if profile.winner == "rag" else "rag"}
    assert "not distinguishable" in profile.verdict()
    fast = profile_from_results(results, criterion="fast")
    assert fast.winner == "cag"  # as accurate as rag on these questions, and faster


def test_profile_round_trips_through_its_file(tmp_path):
    from infuse.methods.profile import AssistantProfile

    profile = profile_from_results(
        _results({"rag": 0.9, "base": 0.2}, {"rag": 1.0, "base": 0.5}),
        rebuild={"model": "smollm2", "kb": "kb"},
    )
    path = profile.write(tmp_path / "profile.json")
    again = AssistantProfile.read(tmp_path)
    assert again.winner == "rag" and again.rebuild == {"model": "smollm2", "kb": "kb"}
    assert again.method("rag").score == profile.method("rag").score
    path.write_text("{not json")
    from infuse.errors import ConfigError

    with pytest.raises(ConfigError, match="not an assistant profile"):
        AssistantProfile.read(path)


def test_indistinguishable_pairs_on_identical_methods():
    scores = {"a": [1, 0, 1, 1, 0] * 10, "b": [1, 0, 1, 1, 0] * 10}
    assert [(a, b) for a, b, _ in indistinguishable_pairs(scores)] == [("a", "b")]
