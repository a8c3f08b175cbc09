"""The verdict: every method's accuracy with its interval, every pair compared, one recommendation.

The recommendation names a winner only when the paired interval of its lead over the runner-up
excludes zero; otherwise it says the methods are not distinguishable on this many questions and
what to do about it. `prefer="fast"` picks the fastest method among those not distinguishable
from the most accurate one.
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

from infuse.eval.intervals import mean_interval, paired_difference
from infuse.eval.results import EvalResults

SMALL_SAMPLE = 30  # below this many questions, intervals are wide: say so
TRAINED = ("lora", "lora+rag")


def _scores(results: EvalResults, name: str, question_ids: list[str]) -> list[float]:
    by_id = {r.question_id: r.correct for r in results.results_for(name)}
    return [float(by_id.get(qid, 0.0)) for qid in question_ids]


def _questions(count: int) -> str:
    return f"{count} question" + ("" if count == 1 else "s")


def _points(value: float) -> str:
    return f"{round(value * 100):+d}"  # an int: never "-0" for a tiny negative difference


def compare_methods(results: EvalResults, *, seed: int = 0) -> None:
    """Fill each method's accuracy interval and `results.comparisons` (every pair, in place)."""
    ids = [q.id for q in results.questions]
    if not ids:
        return
    names = [m.name for m in results.methods]
    for summary in results.methods:
        interval = mean_interval(_scores(results, summary.name, ids), seed=seed)
        summary.accuracy_interval = [round(interval.low, 4), round(interval.high, 4)]
    comparisons = []
    for first, second in combinations(names, 2):
        interval = paired_difference(
            _scores(results, first, ids), _scores(results, second, ids), seed=seed
        )
        comparisons.append({
            "first": first, "second": second, "difference": round(interval.estimate, 4),
            "low": round(interval.low, 4), "high": round(interval.high, 4),
            "distinguishable": interval.excludes_zero(),
        })
    results.comparisons = comparisons


def _difference(results: EvalResults, first: str, second: str) -> dict[str, Any]:
    for row in results.comparisons:
        if (row["first"], row["second"]) == (first, second):
            return dict(row)
        if (row["first"], row["second"]) == (second, first):
            return {**row, "first": first, "second": second, "difference": -row["difference"],
                    "low": -row["high"], "high": -row["low"]}
    raise KeyError((first, second))


def recommend(results: EvalResults, *, prefer: str = "accuracy") -> dict[str, Any]:
    """The one-line recommendation and what it rests on (also stored in `results.recommendation`).

    Keys: `text`, `winner` (None when no method stands out), `runner_up`, `difference`, `low`,
    `high`, `distinguishable`, `questions`, `small_sample`, `prefer`, `fallback`.
    """
    if not results.comparisons:
        compare_methods(results)
    methods = sorted(results.methods, key=lambda m: (-m.accuracy, m.total_mean_s))
    count = len(results.questions)
    small = count < SMALL_SAMPLE
    verdict: dict[str, Any] = {"questions": count, "small_sample": small, "prefer": prefer,
                               "winner": None, "runner_up": None, "fallback": None}
    if not methods:
        verdict["text"] = "No method ran, so there is nothing to recommend."
    elif len(methods) == 1:
        only = methods[0]
        verdict.update(winner=only.name, text=f"Only {only.name} ran ({only.accuracy:.0%} right): "
                       "compare it with other methods before relying on it.")
    else:
        best, second = methods[0], methods[1]
        lead = _difference(results, best.name, second.name)
        verdict.update(runner_up=second.name, difference=lead["difference"], low=lead["low"],
                       high=lead["high"], distinguishable=lead["distinguishable"])
        pick = best
        if prefer == "fast":
            tied = [m for m in methods
                    if m is best or not _difference(results, best.name, m.name)["distinguishable"]]
            pick = min(tied, key=lambda m: m.total_mean_s)
        if lead["distinguishable"] or pick is not best:
            verdict["winner"] = pick.name
            if pick is best:
                text = (f"use {best.name}: {_points(lead['difference'])} points over {second.name}, "
                        f"interval {_points(lead['low'])} to {_points(lead['high'])}")
            else:
                text = (f"use {pick.name}: as accurate as {best.name} within the intervals on "
                        f"{_questions(count)} and faster ({pick.total_mean_s:.2f} s vs "
                        f"{best.total_mean_s:.2f} s per answer)")
            if pick.name in TRAINED:
                untrained = next((m for m in methods if m.name not in TRAINED), None)
                if untrained is not None:
                    verdict["fallback"] = untrained.name
                    text += f"; {untrained.name} if you cannot train"
            verdict["text"] = text
        else:
            standing = (
                f"{best.name} and {second.name} are level" if lead["difference"] == 0
                else f"{best.name} leads {second.name} by {_points(lead['difference'])} points"
            )
            verdict["text"] = (
                f"no method is distinguishable on {_questions(count)}: {standing} (interval "
                f"{_points(lead['low'])} to {_points(lead['high'])} points; more questions "
                "narrow it)"
            )
    if small and methods and verdict["winner"] is not None:
        verdict["text"] += f". Only {_questions(count)}: every interval is wide."
    results.recommendation = verdict
    return verdict
