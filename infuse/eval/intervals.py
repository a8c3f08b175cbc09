"""95% confidence intervals from a paired bootstrap over the same questions.

Every method answered the same questions, so differences are measured per question and the
questions are resampled together (a paired bootstrap): the interval of "rag minus base" is
far narrower than two separate intervals would suggest, and honest on a dozen questions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

DEFAULT_RESAMPLES = 2000
CONFIDENCE = 0.95


@dataclass
class Interval:
    """A point estimate with its lower and upper bound (same units as the scores, 0..1)."""

    estimate: float
    low: float
    high: float

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def to_dict(self) -> dict[str, float]:
        return {key: round(value, 4) for key, value in asdict(self).items()}


def _resampled_indices(count: int, resamples: int, seed: int):
    import numpy as np

    return np.random.default_rng(seed).integers(0, count, size=(resamples, count))


def _percentiles(values, estimate: float) -> Interval:
    import numpy as np

    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return Interval(float(estimate), float(low), float(high))


def mean_interval(
    scores: Sequence[float], *, resamples: int = DEFAULT_RESAMPLES, seed: int = 0
) -> Interval:
    """Bootstrap interval of the mean of per-question scores."""
    import numpy as np

    values = np.asarray(scores, dtype=float)
    if values.size == 0:
        raise ValueError("no scores to bootstrap")
    means = values[_resampled_indices(values.size, resamples, seed)].mean(axis=1)
    return _percentiles(means, float(values.mean()))


def paired_difference(
    first: Sequence[float], second: Sequence[float], *, resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Interval:
    """Bootstrap interval of mean(first) - mean(second), both scored on the same questions in
    the same order."""
    import numpy as np

    a, b = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    if a.shape != b.shape or a.size == 0:
        raise ValueError("paired scores must be non-empty and of equal length")
    differences = (a - b)[_resampled_indices(a.size, resamples, seed)].mean(axis=1)
    return _percentiles(differences, float((a - b).mean()))
