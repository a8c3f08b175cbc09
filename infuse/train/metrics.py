"""What a run tells you as it goes: metrics.jsonl, the loss curve, and early warnings.

`metrics.jsonl` holds one JSON object per logged step (`step`, `loss`, `learning_rate`,
`tokens_per_s`, ... and `eval_loss` on eval steps). `loss.png` plots train and eval loss.
`OverfitWatch` warns when eval loss rises while train loss keeps falling.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from infuse.errors import DataError
from infuse.files import read_jsonl, write_text_atomic


class MetricsLog:
    """Append-only JSONL log; on resume, drops lines past the checkpoint's step."""

    def __init__(self, path: Path, *, resume_from_step: int | None = None) -> None:
        self.path = path
        self.rows: list[dict[str, Any]] = []
        if resume_from_step is not None and path.exists():
            self.rows = [row for row in read_metrics(path) if row["step"] <= resume_from_step]
            write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in self.rows))
        elif path.exists():
            path.unlink()

    def append(self, row: dict[str, Any]) -> None:
        """Record one step's numbers (written and flushed at once: a kill loses nothing logged)."""
        self.rows.append(row)
        with open(self.path, "a", encoding="utf-8") as stream:
            stream.write(json.dumps(row) + "\n")
            stream.flush()
            os.fsync(stream.fileno())


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Read metrics.jsonl; DataError names the line that is not a JSON object with an integer step."""
    rows = []
    for number, row in read_jsonl(path):
        if not isinstance(row.get("step"), int):
            raise DataError(f"{path}, line {number}: each line needs an integer 'step'; the metrics "
                            "log is damaged.")
        rows.append(row)
    return rows


class OverfitWatch:
    """Warns once when eval loss has risen `patience` evals in a row while train loss fell."""

    def __init__(self, patience: int = 2) -> None:
        self.patience = patience
        self.history: list[tuple[float, float]] = []  # (train loss avg since last eval, eval loss)
        self.warned = False

    def update(self, train_loss: float, eval_loss: float) -> str | None:
        """Add one eval; return a warning message the first time overfitting shows."""
        self.history.append((train_loss, eval_loss))
        recent = self.history[-(self.patience + 1) :]
        if self.warned or len(recent) <= self.patience:
            return None
        eval_rising = all(b[1] > a[1] for a, b in zip(recent, recent[1:], strict=False))
        train_falling = all(b[0] < a[0] for a, b in zip(recent, recent[1:], strict=False))
        if eval_rising and train_falling:
            self.warned = True
            return (
                f"Overfitting: eval loss rose from {recent[0][1]:.4f} to {recent[-1][1]:.4f} while "
                f"train loss fell from {recent[0][0]:.4f} to {recent[-1][0]:.4f}. Consider fewer "
                "steps/epochs, a lower learning rate, or more data."
            )
        return None


def plot_loss(rows: list[dict[str, Any]], path: Path) -> None:
    """Draw train (and eval) loss against step into a PNG (matplotlib, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    train = [(r["step"], r["loss"]) for r in rows if r.get("loss") is not None]
    evals = [(r["step"], r["eval_loss"]) for r in rows if r.get("eval_loss") is not None]
    figure, axes = plt.subplots(figsize=(7, 4), dpi=100)
    if train:
        axes.plot(*zip(*train, strict=True), label="train loss")
    if evals:
        axes.plot(*zip(*evals, strict=True), marker="o", label="eval loss")
    axes.set_xlabel("step")
    axes.set_ylabel("loss")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    temp = path.with_name(f".{path.name}.tmp.png")
    figure.savefig(temp)
    plt.close(figure)
    os.replace(temp, path)
