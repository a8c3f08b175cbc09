"""The assistant profile: eval's verdict in a file the server reads to serve the winner.

    profile = profile_from_eval(results, rebuild={...})   # after eval's compare/recommend
    profile.write(path) / AssistantProfile.read(path)

Eval measures (`infuse.eval.verdict`: each method's accuracy with its 95% paired-bootstrap
interval, every pair compared, a recommendation by `--prefer accuracy|fast`); the profile keeps
what serving needs from that, with no statistics of its own:

- `winner`: the method eval recommends; when no method is distinguishable from the others,
  the most accurate one, with `distinguishable: false` and `tied_with` naming the others, so
  nobody reads a coin toss as a verdict;
- `runner_up`: `infuse-auto`'s fallback, the best other method answering from *other evidence*:
  retrieval (rag, lora+rag) falls back to the whole knowledge (cag) and back; methods without
  evidence (base, lora) are never a fallback, as they cannot know better;
- `rebuild`: what is needed to serve it again (model, adapter run, knowledge base, CAG cache,
  settings).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from infuse.errors import ConfigError

PROFILE_FILE = "profile.json"
PROFILE_VERSION = 1
CRITERIA = ("accuracy", "fast")
EVIDENCE = {"rag": "retrieval", "lora+rag": "retrieval", "cag": "whole", "base": None, "lora": None}


@dataclass
class MethodScore:
    """One method's result on the question set."""

    name: str
    score: float
    low: float
    high: float
    questions: int
    latency_p50_s: float | None = None
    ttft_mean_s: float | None = None
    not_distinguishable_from: list[str] = field(default_factory=list)


@dataclass
class AssistantProfile:
    """Which method to serve and why, with the evidence."""

    winner: str
    criterion: str
    methods: list[MethodScore]
    metric: str = "accuracy"
    distinguishable: bool = True  # False: eval could not tell the winner from the others
    runner_up: str | None = None
    tied_with: list[str] = field(default_factory=list)
    not_distinguishable: list[list[str]] = field(default_factory=list)
    rebuild: dict[str, Any] = field(default_factory=dict)
    created_at: float = field(default_factory=time.time)
    version: int = PROFILE_VERSION

    def method(self, name: str) -> MethodScore | None:
        return next((score for score in self.methods if score.name == name), None)

    def verdict(self) -> str:
        """One sentence a person reads."""
        best = self.method(self.winner)
        text = (
            f"{self.winner} wins by {self.criterion}" if self.distinguishable
            else f"{self.winner} is served as the most accurate, but no method stands out"
        )
        if best is not None:
            text += (
                f" ({self.metric} {best.score:.0%}, 95% interval {best.low:.0%}-{best.high:.0%}, "
                f"{best.questions} questions)"
            )
        if self.tied_with:
            text += f"; not distinguishable from {', '.join(self.tied_with)} on these questions"
        return text + "."

    def to_dict(self) -> dict[str, Any]:
        payload = asdict(self)
        payload["verdict"] = self.verdict()
        return payload

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> AssistantProfile:
        payload = {key: value for key, value in payload.items() if key != "verdict"}
        payload["methods"] = [MethodScore(**score) for score in payload.get("methods", [])]
        return cls(**payload)

    def write(self, path: str | Path) -> Path:
        """Write atomically as JSON (a folder gets `profile.json` inside)."""
        from infuse.files import write_text_atomic

        path = Path(path)
        if path.is_dir():
            path = path / PROFILE_FILE
        return write_text_atomic(path, json.dumps(self.to_dict(), indent=2))

    @classmethod
    def read(cls, path: str | Path) -> AssistantProfile:
        """Read a profile file (or the `profile.json` in a report folder); ConfigError naming it."""
        path = Path(path).expanduser()
        if path.is_dir():
            path = path / PROFILE_FILE
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
            return cls.from_dict(payload)
        except FileNotFoundError:
            raise ConfigError(
                f"No assistant profile at {path}. `infuse eval ... --output DIR` writes DIR/{PROFILE_FILE}."
            ) from None
        except (json.JSONDecodeError, TypeError, KeyError) as error:
            raise ConfigError(
                f"{path} is not an assistant profile ({error}); run `infuse eval` again to rewrite it."
            ) from error


def profile_from_eval(results: Any, *, rebuild: dict[str, Any] | None = None) -> AssistantProfile:
    """The profile for an eval's results (an `EvalResults` after `compare_methods` and
    `recommend`: methods with `accuracy_interval`, `comparisons`, `recommendation`)."""
    comparisons = list(getattr(results, "comparisons", []) or [])
    recommendation = dict(getattr(results, "recommendation", {}) or {})
    ties: dict[str, list[str]] = {}
    for row in comparisons:
        if not row.get("distinguishable", True):
            ties.setdefault(row["first"], []).append(row["second"])
            ties.setdefault(row["second"], []).append(row["first"])
    latencies = {}
    for row in getattr(results, "per_question", []):
        latencies.setdefault(row.method, []).append(row.total_s)
    scores = []
    for summary in results.methods:
        low, high = summary.accuracy_interval or [summary.accuracy, summary.accuracy]
        times = sorted(latencies.get(summary.name, []))
        scores.append(MethodScore(
            name=summary.name,
            score=summary.accuracy,
            low=low,
            high=high,
            questions=summary.questions,
            latency_p50_s=times[len(times) // 2] if times else None,
            ttft_mean_s=summary.ttft_mean_s,
            not_distinguishable_from=ties.get(summary.name, []),
        ))
    return choose_profile(
        scores,
        criterion=recommendation.get("prefer", "accuracy"),
        winner=recommendation.get("winner"),
        rebuild=rebuild,
    )


def choose_profile(
    scores: list[MethodScore],
    *,
    criterion: str = "accuracy",
    winner: str | None = None,
    rebuild: dict[str, Any] | None = None,
) -> AssistantProfile:
    """The profile for these scores: `winner` (eval's recommendation) or else the most accurate,
    its ties, and the fallback runner-up."""
    if criterion not in CRITERIA:
        raise ConfigError(f"--prefer {criterion!r}: choose one of {', '.join(CRITERIA)}.")
    if not scores:
        raise ConfigError("No method produced scores; nothing to choose from.")
    ranked = sorted(scores, key=lambda item: (-item.score, item.latency_p50_s or float("inf"), item.name))
    chosen = next((item for item in ranked if item.name == winner), ranked[0])
    pairs = sorted({tuple(sorted((item.name, other))) for item in scores for other in item.not_distinguishable_from})
    return AssistantProfile(
        winner=chosen.name,
        criterion=criterion,
        methods=ranked,
        distinguishable=winner is not None and not chosen.not_distinguishable_from,
        runner_up=fallback_for(chosen.name, ranked),
        tied_with=list(chosen.not_distinguishable_from),
        not_distinguishable=[list(pair) for pair in pairs],
        rebuild=dict(rebuild or {}),
    )


def fallback_for(winner: str, ranked: list[MethodScore]) -> str | None:
    """The best-scoring method answering from other evidence than `winner` (None if none)."""
    own = EVIDENCE.get(_kind(winner))
    for item in ranked:
        kind = EVIDENCE.get(_kind(item.name))
        if item.name != winner and kind is not None and kind != own:
            return item.name
    return None


def _kind(name: str) -> str:
    """`lora+rag:run1` -> `lora+rag`."""
    return name.split(":", 1)[0]
