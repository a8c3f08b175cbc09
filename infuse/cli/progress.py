"""Progress the CLI draws for the library's `on_progress(done, total, **info)` callbacks.

On a terminal: a rich bar on stderr with the elapsed time and an estimate of what is left.
Elsewhere (a pipe, a log file, CI): a plain line on stderr every few seconds and at the end,
so a long step never runs silent. Disabled (for `--json` or `--quiet`): nothing at all.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

PLAIN_EVERY_S = 10.0

ProgressCallback = Callable[..., None]


def _describe(info: dict[str, Any]) -> str:
    parts = [str(value) for key, value in info.items() if key in ("method", "name", "file", "step")]
    return " ".join(parts)


@contextmanager
def progress_bar(label: str, *, enabled: bool = True, total: int | None = None) -> Iterator[ProgressCallback]:
    """Yield an `on_progress(done, total, **info)` callback that draws `label`'s progress."""
    if not enabled:
        yield lambda done, total=None, **info: None
        return
    if sys.stderr.isatty():
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        bar = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
            console=Console(stderr=True), transient=False,
        )
        task = bar.add_task(label, total=total)
        with bar:
            def draw(done: int, total: int | None = None, **info: Any) -> None:
                detail = _describe(info)
                bar.update(task, completed=done, total=total,
                           description=f"{label} {detail}".strip())

            yield draw
        return
    started = [time.monotonic()]
    last = [0.0]
    totals: list[int | None] = [None]
    previous_call = [started[0]]

    def plain(done: int, total: int | None = None, **info: Any) -> None:
        now = time.monotonic()
        if total is not None and totals[0] is not None and total != totals[0]:
            # a new phase (eval's forgetting check after the answers) began at the last call
            started[0] = previous_call[0]
        previous_call[0] = now
        if total is not None:
            totals[0] = total
        finished = total is not None and done >= total
        if done == 0 and total is None:
            return  # a step saying it began: the clock starts, the first line waits for news
        if not finished and now - last[0] < PLAIN_EVERY_S:
            return
        last[0] = now
        elapsed = now - started[0]
        line = f"{label}: {done}" + (f"/{total}" if total else "")
        if total and 0 < done < total:
            # a step that knows better (a time budget stops it early) says what is left itself
            left = info.get("eta_s")
            left = elapsed / done * (total - done) if left is None else float(left)
            line += f", {elapsed:.0f} s elapsed, about {left:.0f} s left"
        elif finished:
            line += f" done in {elapsed:.0f} s"
        detail = _describe(info)
        print(line + (f" ({detail})" if detail else ""), file=sys.stderr, flush=True)

    yield plain
