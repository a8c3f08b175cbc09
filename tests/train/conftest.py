"""Fixtures for training tests: a small Q/A dataset and fast settings on the tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """Tiny models run fastest on one thread, above all on CI's 2 shared cores."""
    import torch

    torch.set_num_threads(1)

QUESTION = "How many days is the refund window?"
ANSWER = "The refund window is 45 days."


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.fixture
def qa_file(tmp_path) -> Path:
    """Eight alpaca rows: a refund fact per item."""
    rows = [
        {"instruction": f"What is the refund window for item {i}?", "output": f"The refund window is {40 + i} days."}
        for i in range(8)
    ]
    return write_jsonl(tmp_path / "qa.jsonl", rows)


@pytest.fixture
def fact_file(tmp_path) -> Path:
    """One question with one answer, to learn by heart."""
    return write_jsonl(tmp_path / "fact.jsonl", [{"instruction": QUESTION, "output": ANSWER}])


@pytest.fixture
def fast_config(tiny_model_dir, tmp_path):
    """A RunConfig factory: tiny model, CPU, no warm-up, no checkpointing (seconds per run)."""
    from infuse.train import RunConfig

    def make(data: Path, **changes) -> RunConfig:
        settings = dict(
            model=str(tiny_model_dir), data=str(data), output=str(tmp_path / "run"),
            max_steps=6, batch_size=2, grad_accum=1, learning_rate=1e-2, warmup_steps=0,
            lr_schedule="constant", gradient_checkpointing=False, max_seq_len=128, device="cpu",
        )
        settings.update(changes)
        return RunConfig(**settings)

    return make
