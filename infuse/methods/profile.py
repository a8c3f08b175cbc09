"""The assistant profile: eval's verdict in a file the server reads to serve the winner.

    profile = choose_profile(scores, criterion="accuracy", rebuild={...})
    profile.write(path) / AssistantProfile.read(path)

`scores` is one `MethodScore` per method, each with its mean and 95% interval and the methods it
cannot be told apart from (eval computes these with a paired bootstrap, `infuse.eval.intervals`).
The winner by criterion:

- `accuracy` (default): the highest mean score. When others are not distinguishable from it,
  it still wins, and the profile says so (`tied_with`), so nobody reads a coin toss as a verdict.
- `fast`: among the methods not distinguishable from the most accurate one, the one with the
  lowest median latency.

The runner-up for `infuse-auto`'s fallback is the best other method that answers from *other
evidence*: retrieval (rag, lora+rag) falls back to the whole knowledge (cag) and back; methods
without evidence (base, lora) are never a fallback, as they cannot know better.

`rebuild` records what is needed to serve it again: model, adapter run, knowledge base, CAG cache
and settings.
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
        text = f"{self.winner} wins by {self.criterion}"
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


def choose_profile(
    scores: list[MethodScore],
    *,
    criterion: str = "accuracy",
    metric: str = "accuracy",
    rebuild: dict[str, Any] | None = None,
) -> AssistantProfile:
    """The profile for these scores: winner by `criterion`, its ties, the fallback runner-up."""
    if criterion not in CRITERIA:
        raise ConfigError(f"--prefer {criterion!r}: choose one of {', '.join(CRITERIA)}.")
    if not scores:
        raise ConfigError("No method produced scores; nothing to choose from.")
    ranked = sorted(scores, key=lambda item: (-item.score, item.latency_p50_s or float("inf"), item.name))
    best = ranked[0]
    winner = best
    if criterion == "fast":
        peers = [best] + [item for item in ranked[1:] if item.name in best.not_distinguishable_from]
        winner = min(peers, key=lambda item: (item.latency_p50_s or float("inf"), -item.score))
    pairs = sorted({tuple(sorted((item.name, other))) for item in scores for other in item.not_distinguishable_from})
    return AssistantProfile(
        winner=winner.name,
        criterion=criterion,
        metric=metric,
        methods=ranked,
        runner_up=fallback_for(winner.name, ranked),
        tied_with=[name for name in winner.not_distinguishable_from if name != winner.name],
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
