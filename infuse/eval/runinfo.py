"""What eval reads from a training run folder: the loss curve and a few facts about the run.

Read (each optional, nothing else is assumed):

    metrics.jsonl   one object per logged step: `step`, `loss`, optionally `eval_loss`
    config.toml     the run's settings (`model`, `lora_r`, `num_epochs`, `chat_template`, ...)
    summary.json    numbers the trainer measured; eval uses `train_examples`,
                    `model_parameters`, `trainable_parameters`, `supervised_token_fraction`
                    (share of tokens with a label), `training_s`
    chat_template.jinja   the exact chat template the run trained with
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infuse.errors import DataError

# Other names trainers use for the same facts (HF Trainer's trainer_state, our own summary).
_ALIASES = {
    "train_examples": ("train_examples", "num_train_examples", "num_examples", "train_rows"),
    "model_parameters": ("model_parameters", "total_parameters", "num_parameters", "parameters"),
    "trainable_parameters": ("trainable_parameters", "num_trainable_parameters"),
    "supervised_token_fraction": (
        "supervised_token_fraction", "label_fraction", "trained_token_fraction",
    ),
    "training_s": ("training_s", "train_runtime", "train_seconds", "elapsed_s"),
}


@dataclass
class RunInfo:
    """A training run as eval sees it."""

    run_dir: Path
    metrics: list[dict[str, Any]] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    chat_template: str | None = None

    def fact(self, name: str) -> Any:
        """A run fact by its eval name (see the module docstring), from summary then config."""
        for source in (self.summary, self.config):
            for key in _ALIASES.get(name, (name,)):
                if source.get(key) is not None:
                    return source[key]
        return None

    @property
    def training_s(self) -> float | None:
        value = self.fact("training_s")
        if value is None and self.metrics:
            # fall back on the log's own clock when the trainer wrote one
            stamps = [row.get("elapsed_s") for row in self.metrics if row.get("elapsed_s") is not None]
            value = stamps[-1] if stamps else None
        return float(value) if value is not None else None

    def curve(self) -> list[dict[str, Any]]:
        """The loss curve: `step`, `loss` and/or `eval_loss` per logged step, in step order."""
        points = []
        for row in self.metrics:
            point = {"step": row["step"]}
            for key in ("loss", "eval_loss"):
                if isinstance(row.get(key), (int, float)):
                    point[key] = float(row[key])
            if len(point) > 1:
                points.append(point)
        return sorted(points, key=lambda p: p["step"])


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Read metrics.jsonl; raise DataError naming the line when one is not a JSON object with a step."""
    from infuse.files import read_jsonl

    rows = []
    for number, row in read_jsonl(path):
        if not isinstance(row.get("step"), int):
            raise DataError(f"{path}, line {number}: each line needs an integer 'step'.")
        rows.append(row)
    return rows


def load_run(run_dir: str | Path) -> RunInfo:
    """Read a run folder; raise DataError when it is not a folder or has no metrics.jsonl."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError(f"Run folder {run_dir} does not exist. Give the --output folder of `infuse train`.")
    metrics_path = run_dir / "metrics.jsonl"
    if not metrics_path.exists():
        raise DataError(f"{run_dir} has no metrics.jsonl: is it a training run folder?")
    info = RunInfo(run_dir=run_dir, metrics=read_metrics(metrics_path))
    config_path = run_dir / "config.toml"
    if config_path.exists():
        try:
            info.config = tomllib.loads(config_path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as error:
            raise DataError(f"{config_path}: not valid TOML ({error}).") from None
    summary_path = run_dir / "summary.json"
    if summary_path.exists():
        try:
            info.summary = json.loads(summary_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise DataError(f"{summary_path}: not valid JSON ({error.msg}).") from None
    template_path = run_dir / "chat_template.jinja"
    if template_path.exists():
        info.chat_template = template_path.read_text(encoding="utf-8")
    return info
