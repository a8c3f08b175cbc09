"""What eval reads from a training run folder: the run record `infuse train` wrote.

The record (`infuse.train.runs.RunRecord`: run.json, config.toml, chat_template.jinja and the
loss curve of metrics.jsonl) is the one reader of a run folder; eval adds only its own rule
that a run to evaluate must have logged its loss curve.
"""

from __future__ import annotations

from pathlib import Path

from infuse.errors import DataError
from infuse.train.runs import ADAPTER_FILE, METRICS_FILE, RunRecord, check_adapter_file

RunInfo = RunRecord  # the name eval's modules use for a run


def load_run(run_dir: str | Path) -> RunRecord:
    """Read a run folder for eval; DataError when it is missing, no infuse run, or has no metrics.jsonl."""
    from infuse.errors import ModelNotFoundError

    run_dir = Path(run_dir)
    try:
        record = RunRecord.read(run_dir)
    except ModelNotFoundError as error:
        raise DataError(str(error)) from None
    if not (run_dir / METRICS_FILE).exists():
        raise DataError(f"{run_dir} has no {METRICS_FILE}: is it a training run folder?")
    if record.is_finished:  # a finished run must still have its adapter whole
        check_adapter_file(run_dir / ADAPTER_FILE)
    return record
