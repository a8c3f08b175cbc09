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


def _complete_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """(step, folder) of every complete checkpoint (its state file written), newest first."""
    root = run_dir / "checkpoints"
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        if child.name.startswith("step-") and (child / STATE_FILE).exists():
            try:
                found.append((int(child.name.split("-", 1)[1]), child))
            except ValueError:
                continue
    return sorted(found, reverse=True)


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The complete checkpoint with the highest step, or None."""
    found = _complete_checkpoints(run_dir)
    return found[0][1] if found else None


def usable_checkpoint(run_dir: Path) -> tuple[Path | None, list[str]]:
    """The newest checkpoint whose adapter weights are whole, and a warning per one skipped.

    A truncated adapter (a disk that filled up, a copy cut short) falls back to the previous
    checkpoint; when none is whole, DataError names the newest damaged file.
    """
    from infuse.errors import DataError
    from infuse.train.runs import ADAPTER_FILE, check_adapter_file

    warnings: list[str] = []
    first_error: DataError | None = None
    for _step, path in _complete_checkpoints(run_dir):
        try:
            check_adapter_file(path / ADAPTER_FILE)
        except DataError as error:
            first_error = first_error or error
            warnings.append(f"{error} Skipping checkpoint {path.name}; resuming from an earlier one.")
            continue
        return path, warnings
    if first_error is not None:
        raise DataError(f"{first_error} No earlier checkpoint is whole: start a new run "
                        "(another --output), or restore the file.")
    return None, warnings


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
    Raises DataError naming the file when one is damaged.
    """
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    state = _read_state(path / STATE_FILE)
    optimizer_state = _load_torch(path / "optimizer.pt")
    scheduler_state = _load_torch(path / "scheduler.pt")
    rng_states = _load_torch(path / "rng.pt")
    try:
        if context is not None and context.mode == "fsdp":
            from infuse.train.data_parallel import load_adapter_weights, load_optimizer_state

            load_adapter_weights(model, load_file(str(path / "adapter_model.safetensors")), context)
            load_optimizer_state(optimizer, optimizer_state, context)
        else:
            weights = load_file(str(path / "adapter_model.safetensors"),
                                device=str(next(model.parameters()).device))
            set_peft_model_state_dict(model, weights)
            optimizer.load_state_dict(optimizer_state)
        scheduler.load_state_dict(scheduler_state)
        _restore_rng(rng_states)
    except (KeyError, ValueError, TypeError, RuntimeError) as error:
        raise _damaged(path, f"does not match this run ({type(error).__name__}: {error})") from None
    return state


def _damaged(path: Path, what: str):
    from infuse.errors import DataError

    folder = path if path.is_dir() else path.parent
    return DataError(
        f"{path} {what}: the checkpoint is damaged. Delete {folder} to resume from the previous "
        "checkpoint, or start a new run in another --output."
    )


def _load_torch(path: Path):
    """torch.load with a named error (a zero-byte or garbage file raises EOFError/pickle errors)."""
    import pickle

    import torch

    if not path.exists():
        raise _damaged(path, "is missing")
    if path.stat().st_size == 0:
        raise _damaged(path, "is empty (0 bytes)")
    try:
        return torch.load(path, weights_only=False)
    except (EOFError, RuntimeError, pickle.UnpicklingError, ValueError, OSError, AttributeError,
            ImportError, IndexError, TypeError, UnicodeDecodeError) as error:
        raise _damaged(path, f"is not readable ({type(error).__name__})") from None


def _read_state(path: Path) -> TrainerState:
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
        state = TrainerState(**values)
        if not all(isinstance(getattr(state, name), int | float) for name in asdict(state)):
            raise TypeError("non-numeric value")
        return state
    except (json.JSONDecodeError, UnicodeDecodeError, TypeError) as error:
        raise _damaged(path, f"is not a valid trainer state ({type(error).__name__})") from None
