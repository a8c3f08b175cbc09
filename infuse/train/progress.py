"""The training progress bar: step, loss, tokens/s and ETA (rich, on stderr)."""

from __future__ import annotations


class TrainProgress:
    """A rich progress bar for optimizer steps; a no-op when disabled."""

    def __init__(self, total_steps: int, *, enabled: bool = True, console=None) -> None:
        self.total = total_steps
        self.enabled = enabled
        self._console = console
        self._progress = None
        self._task = None

    def start(self, done: int) -> None:
        """Show the bar, starting at `done` steps (non-zero when resuming)."""
        if not self.enabled:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self._console = self._console or Console(stderr=True)
        self._progress = Progress(
            TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[speed]} tok/s"),
            TextColumn("ETA"), TimeRemainingColumn(), console=self._console,
        )
        self._progress.start()
        self._task = self._progress.add_task("train", total=self.total, completed=done, loss="-", speed="-")

    def update(self, step: int, loss: float | None, tokens_per_s: float) -> None:
        """Move the bar to `step` and show the latest loss and throughput."""
        if self._progress is None:
            return
        self._progress.update(
            self._task, completed=step, loss="-" if loss is None else f"{loss:.4f}",
            speed=f"{tokens_per_s:,.0f}",
        )

    def warn(self, message: str) -> None:
        """Print a warning above the bar (always, also when the bar is off)."""
        from rich.console import Console

        console = self._console or Console(stderr=True)
        self._console = console
        console.print(f"[yellow]Warning:[/yellow] {message}")

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
