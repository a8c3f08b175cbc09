"""A run killed with SIGKILL and resumed ends exactly where an uninterrupted run ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

STEPS = 24


def _cli_args(config) -> list[str]:
    return [
        sys.executable, "-m", "infuse", "train", "--model", config.model, "--data", config.data,
        "--output", config.output, "--max-steps", str(config.max_steps), "--batch-size", "2",
        "--grad-accum", "2", "--learning-rate", str(config.learning_rate), "--warmup-steps", "3",
        "--lr-schedule", "cosine", "--no-gradient-checkpointing", "--max-seq-len", "128",
        "--device", "cpu", "--save-every", "3", "--lora-dropout", "0.1", "--quiet",
    ]


def test_resume_after_kill_matches_uninterrupted_run(fast_config, qa_file, tmp_path):
    from infuse.train import train

    common = dict(max_steps=STEPS, batch_size=2, grad_accum=2, learning_rate=1e-2, warmup_steps=3,
                  lr_schedule="cosine", save_every=3, lora_dropout=0.1)  # dropout: RNG state must resume too
    killed = fast_config(qa_file, output=str(tmp_path / "killed"), **common)
    process = subprocess.Popen(_cli_args(killed), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               env={**os.environ, "PYTHONPATH": str(Path.cwd()), "OMP_NUM_THREADS": "1"})
    first = tmp_path / "killed" / "checkpoints" / "step-3" / "trainer_state.json"
    deadline = time.time() + 120
    while not first.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    if process.returncode != -signal.SIGKILL:
        pytest.fail(f"the run ended before the kill: {process.stderr.read().decode()[-2000:]}")
    assert not (tmp_path / "killed" / "adapter_model.safetensors").exists()  # really interrupted

    resumed = train(killed, resume=True)
    straight = train(fast_config(qa_file, output=str(tmp_path / "straight"), **common))

    assert resumed.steps == straight.steps == STEPS
    ours = load_file(str(resumed.run_dir / "adapter_model.safetensors"))
    theirs = load_file(str(straight.run_dir / "adapter_model.safetensors"))
    assert ours.keys() == theirs.keys()
    for name in ours:
        torch.testing.assert_close(ours[name], theirs[name], rtol=1e-4, atol=1e-6, msg=name)
    losses = {json.loads(line)["step"]: json.loads(line)["loss"]
              for line in (resumed.run_dir / "metrics.jsonl").read_text().splitlines()}
    straight_losses = {json.loads(line)["step"]: json.loads(line)["loss"]
                       for line in (straight.run_dir / "metrics.jsonl").read_text().splitlines()}
    assert sorted(losses) == list(range(1, STEPS + 1))  # no step lost or logged twice
    for step in losses:
        assert losses[step] == pytest.approx(straight_losses[step], rel=1e-4, abs=1e-5)
