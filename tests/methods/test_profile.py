"""The assistant profile eval writes: built from eval's own verdict (paired-bootstrap intervals
and recommendation in `infuse.eval.verdict`), read back by the server."""

from __future__ import annotations

import random

import pytest

from infuse.errors import ConfigError
from infuse.eval.questions import EvalQuestion
from infuse.eval.results import EvalResults, QuestionResult, summarize_method
from infuse.eval.verdict import compare_methods, recommend
from infuse.methods.profile import AssistantProfile, profile_from_eval


def _results(rates: dict[str, float], latencies: dict[str, float], *, prefer="accuracy",
             questions: int = 80, seed: int = 7) -> EvalResults:
    """Every method answers the same questions; one random draw per question decides who is
    right (paired, like real questions: hard ones are hard for all)."""
    rng = random.Random(seed)
    rows = []
    for index in range(questions):
        draw = rng.random()
        for method, rate in rates.items():
            right = 1.0 if draw < rate else 0.0
            rows.append(QuestionResult(
                question_id=f"q{index}", method=method, answer="", exact_match=right, f1=right,
                correct=right, no_answer=False, total_s=latencies[method],
            ))
    summaries = [summarize_method(name, [r for r in rows if r.method == name]) for name in rates]
    results = EvalResults(
        questions=[EvalQuestion(id=f"q{i}", question="?", answer="x") for i in range(questions)],
        methods=summaries, per_question=rows,
    )
    compare_methods(results)
    recommend(results, prefer=prefer)
    return results


def test_profile_picks_the_clearly_better_method():
    profile = profile_from_eval(_results({"rag": 0.9, "base": 0.2, "cag": 0.5},
                                         {"rag": 1.0, "base": 0.5, "cag": 0.8}))
    assert profile.winner == "rag" and profile.distinguishable
    rag, base = profile.method("rag"), profile.method("base")
    assert rag.low > base.high  # the intervals exclude the loser
    assert rag.low <= rag.score <= rag.high and rag.questions == 80
    assert profile.tied_with == []
    assert profile.runner_up == "cag"  # other evidence than retrieval: the whole knowledge
    assert "rag wins by accuracy" in profile.verdict()


def test_profile_says_when_two_methods_are_tied():
    results = _results({"rag": 0.6, "cag": 0.6, "base": 0.1}, {"rag": 2.0, "cag": 0.5, "base": 0.3})
    profile = profile_from_eval(results)
    assert ["cag", "rag"] in profile.not_distinguishable
    assert not profile.distinguishable and profile.tied_with
    assert "no method stands out" in profile.verdict()
    fast = profile_from_eval(_results({"rag": 0.6, "cag": 0.6, "base": 0.1},
                                      {"rag": 2.0, "cag": 0.5, "base": 0.3}, prefer="fast"))
    assert fast.winner == "cag" and fast.criterion == "fast"  # as accurate as rag, and faster


def test_fallback_never_goes_to_a_method_without_evidence():
    profile = profile_from_eval(_results({"cag": 0.9, "base": 0.5}, {"cag": 1.0, "base": 0.5}))
    assert profile.winner == "cag" and profile.runner_up is None


def test_profile_round_trips_through_its_file(tmp_path):
    profile = profile_from_eval(_results({"rag": 0.9, "base": 0.2}, {"rag": 1.0, "base": 0.5}),
                                rebuild={"model": "smollm2", "kb": "kb"})
    path = profile.write(tmp_path / "profile.json")
    again = AssistantProfile.read(tmp_path)
    assert again.winner == "rag" and again.rebuild == {"model": "smollm2", "kb": "kb"}
    assert again.method("rag").score == profile.method("rag").score
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="not an assistant profile"):
        AssistantProfile.read(path)
    with pytest.raises(ConfigError, match="No assistant profile"):
        AssistantProfile.read(tmp_path / "missing.json")
