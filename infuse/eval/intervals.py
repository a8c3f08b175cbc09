"""95% confidence intervals for method scores: a paired bootstrap over the same questions.

Every method answered the same questions, so the honest comparison resamples *questions*
(with replacement) and recomputes every method's mean on the same resample: a hard question
stays hard for all methods, and the difference between two methods varies far less than their
scores do. From `resamples` resamples:

    method_intervals(scores)            each method's mean with its 2.5th-97.5th percentile
    paired_difference(scores, a, b)     mean(a - b) per question with its interval
    indistinguishable_pairs(scores)     pairs whose difference interval contains 0

Percentile bootstrap with numpy (a few thousand resamples of a few hundred questions take
milliseconds); the seed is fixed so a report reads the same when run again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

DEFAULT_RESAMPLES = 2000
DEFAULT_CONFIDENCE = 0.95
DEFAULT_SEED = 0


@dataclass
class Interval:
    """A mean with its bootstrap confidence interval over `n` questions."""

    mean: float
    low: float
    high: float
    n: int
    confidence: float = DEFAULT_CONFIDENCE

    def overlaps(self, other: Interval) -> bool:
        return self.low <= other.high and other.low <= self.high

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _matrix(scores: Mapping[str, Sequence[float]]):
    import numpy as np

    names = list(scores)
    lengths = {len(values) for values in scores.values()}
    if len(lengths) > 1:
        sizes = ", ".join(f"{name}: {len(values)}" for name, values in scores.items())
        raise ValueError(f"A paired bootstrap needs every method scored on the same questions ({sizes}).")
    return names, np.asarray([list(scores[name]) for name in names], dtype=float)


def _resample_means(matrix, resamples: int, seed: int):
    """Means of each row over `resamples` resamples of the columns (the questions)."""
    import numpy as np

    questions = matrix.shape[1]
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, questions, size=(resamples, questions))
    return matrix[:, picks].mean(axis=2)  # (methods, resamples)


def _interval(mean: float, samples, n: int, confidence: float) -> Interval:
    import numpy as np

    tail = (1.0 - confidence) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail])
    return Interval(float(mean), float(low), float(high), n, confidence)


def method_intervals(
    scores: Mapping[str, Sequence[float]],
    *,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = DEFAULT_SEED,
) -> dict[str, Interval]:
    """Each method's mean score with its paired-bootstrap interval (question -> score lists,
    aligned: index i is the same question for every method)."""
    names, matrix = _matrix(scores)
    if matrix.shape[1] == 0:
        return {name: Interval(0.0, 0.0, 0.0, 0, confidence) for name in names}
    means = _resample_means(matrix, resamples, seed)
    return {
        name: _interval(matrix[row].mean(), means[row], matrix.shape[1], confidence)
        for row, name in enumerate(names)
    }


def paired_difference(
    scores: Mapping[str, Sequence[float]],
    first: str,
    second: str,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = DEFAULT_SEED,
) -> Interval:
    """Mean of (first - second) per question, with its paired-bootstrap interval."""
    names, matrix = _matrix({first: scores[first], second: scores[second]})
    if matrix.shape[1] == 0:
        return Interval(0.0, 0.0, 0.0, 0, confidence)
    difference = matrix[0] - matrix[1]
    means = _resample_means(difference[None, :], resamples, seed)[0]
    return _interval(difference.mean(), means, matrix.shape[1], confidence)


def indistinguishable_pairs(
    scores: Mapping[str, Sequence[float]],
    *,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = DEFAULT_SEED,
) -> list[tuple[str, str, Interval]]:
    """Pairs (a, b, difference) whose difference interval contains 0: on these questions the
    data cannot say which of the two is better."""
    names = list(scores)
    pairs = []
    for index, first in enumerate(names):
        for second in names[index + 1 :]:
            difference = paired_difference(
                scores, first, second, resamples=resamples, confidence=confidence, seed=seed
            )
            if difference.contains(0.0):
                pairs.append((first, second, difference))
    return pairs


def aligned_scores(
    results: Iterable[Any], methods: Sequence[str], key: str = "correct"
) -> dict[str, list[float]]:
    """Per-question results (objects or dicts with `question_id`, `method` and `key`) as aligned
    score lists: only the questions every method answered, in question order."""
    by_method: dict[str, dict[str, float]] = {name: {} for name in methods}
    order: list[str] = []
    for result in results:
        get = result.get if isinstance(result, dict) else (lambda name, r=result: getattr(r, name))
        method, question = get("method"), get("question_id")
        if method not in by_method:
            continue
        if question not in order:
            order.append(question)
        value = get(key)
        by_method[method][question] = float(value or 0.0)
    shared = [question for question in order if all(question in by_method[name] for name in methods)]
    return {name: [by_method[name][question] for question in shared] for name in methods}


def profile_from_results(
    results: Any,
    *,
    criterion: str = "accuracy",
    metric: str = "correct",
    rebuild: dict[str, Any] | None = None,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
):
    """The assistant profile for an `EvalResults`: every method that ran, its mean `metric`
    with its 95% interval, the pairs the paired bootstrap cannot tell apart, the winner."""
    import statistics

    from infuse.methods.profile import MethodScore, choose_profile

    names = [summary.name for summary in results.methods]
    scores = aligned_scores(results.per_question, names, key=metric)
    intervals = method_intervals(scores, resamples=resamples, seed=seed)
    ties = indistinguishable_pairs(scores, resamples=resamples, seed=seed)
    method_scores = []
    for summary in results.methods:
        interval = intervals[summary.name]
        totals = [row.total_s for row in results.per_question if row.method == summary.name]
        tied = [b if a == summary.name else a for a, b, _ in ties if summary.name in (a, b)]
        method_scores.append(
            MethodScore(
                name=summary.name,
                score=round(interval.mean, 4),
                low=round(interval.low, 4),
                high=round(interval.high, 4),
                questions=interval.n,
                latency_p50_s=round(statistics.median(totals), 4) if totals else None,
                ttft_mean_s=summary.ttft_mean_s,
                not_distinguishable_from=tied,
            )
        )
    return choose_profile(
        method_scores,
        criterion=criterion,
        metric="accuracy" if metric == "correct" else metric,
        rebuild=rebuild,
    )
