"""Checkpoints that make `--resume` continue a killed run exactly where it stopped.

`checkpoints/step-N/` holds the adapter (peft format), the optimizer and scheduler state,
every random generator's state and the data position (the next micro-batch number). It is
written to a temporary folder and renamed into place, so a kill -9 at any moment leaves
either a whole checkpoint or none. Under several processes the adapter and optimizer state are
gathered into this same single-process format (rank 0 writes), so any process count can resume.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

STATE_FILE = "trainer_state.json"


@dataclass
class TrainerState:
    """Where training stands: optimizer steps done, next micro-batch, tokens seen, time spent."""

    step: int = 0
    next_micro_batch: int = 0
    tokens_seen: int = 0
    elapsed_s: float = 0.0


def checkpoint_dir(run_dir: Path, step: int) -> Path:
    return run_dir / "checkpoints" / f"step-{step}"


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The complete checkpoint with the highest step, or None."""
    root = run_dir / "checkpoints"
    if not root.is_dir():
        return None
    found = []
    for child in root.iterdir():
        if child.name.startswith("step-") and (child / STATE_FILE).exists():
            try:
                found.append((int(child.name.split("-", 1)[1]), child))
            except ValueError:
                continue
    return max(found)[1] if found else None


def _rng_states() -> dict:
    import numpy as np
    import torch

    states = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _restore_rng(states: dict) -> None:
    import numpy as np
    import torch

    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_checkpoint(run_dir: Path, state: TrainerState, model, optimizer, scheduler, *, keep: int,
                    context=None) -> Path:
    """Write checkpoint `step-<state.step>` atomically; keep only the newest `keep` ones.

    With several processes (`context`, an `infuse.train.distributed.DistContext`) every process
    calls it: the adapter and optimizer state are gathered into the single-process format and
    only rank 0 writes, so any number of processes can resume from it.
    """
    import torch

    from infuse.train.data_parallel import full_optimizer_state, save_adapter
    from infuse.train.distributed import DistContext

    context = context or DistContext()
    target = checkpoint_dir(run_dir, state.step)
    staging = target.parent / f".staging-{target.name}"
    if context.is_main:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
    save_adapter(model, staging, context)
    optimizer_state = full_optimizer_state(optimizer, context)
    if not context.is_main:
        return target
    torch.save(optimizer_state, staging / "optimizer.pt")
    torch.save(scheduler.state_dict(), staging / "scheduler.pt")
    torch.save(_rng_states(), staging / "rng.pt")
    # The state file goes last: its presence marks the checkpoint complete.
    (staging / STATE_FILE).write_text(json.dumps(asdict(state), indent=2), encoding="utf-8")
    if target.exists():
        shutil.rmtree(target)
    os.replace(staging, target)
    _prune(run_dir, keep)
    return target


def _prune(run_dir: Path, keep: int) -> None:
    complete = sorted(
        (int(p.name.split("-", 1)[1]), p)
        for p in (run_dir / "checkpoints").glob("step-*")
        if (p / STATE_FILE).exists()
    )
    for _step, path in complete[:-keep]:
        shutil.rmtree(path, ignore_errors=True)


def load_checkpoint(path: Path, model, optimizer, scheduler, context=None) -> TrainerState:
    """Restore adapter weights, optimizer, scheduler and RNGs from `path`; return the state.

    Under FSDP (`context.mode == 'fsdp'`) the full tensors are sharded onto this process.
    """
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    optimizer_state = torch.load(path / "optimizer.pt", weights_only=False)
    if context is not None and context.mode == "fsdp":
        from infuse.train.data_parallel import load_adapter_weights, load_optimizer_state

        load_adapter_weights(model, load_file(str(path / "adapter_model.safetensors")), context)
        load_optimizer_state(optimizer, optimizer_state, context)
    else:
        weights = load_file(str(path / "adapter_model.safetensors"), device=str(next(model.parameters()).device))
        set_peft_model_state_dict(model, weights)
        optimizer.load_state_dict(optimizer_state)
    scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=False))
    _restore_rng(torch.load(path / "rng.pt", weights_only=False))
    return TrainerState(**json.loads((path / STATE_FILE).read_text(encoding="utf-8")))
