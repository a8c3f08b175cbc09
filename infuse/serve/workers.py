"""One generation worker per loaded model, each with a bounded queue.

A model generates one answer at a time (local generation is serialised by a lock in the model
anyway), so requests wait in a queue of `queue_size` places per model; a full queue refuses at
once (`QueueFullError`, which the API turns into 429 with `Retry-After`) instead of letting
latency grow without bound. A job whose client went away is cancelled: skipped when still
queued, stopped at its next token when running (the token callback raises).
"""

from __future__ import annotations

import collections
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from infuse.errors import InfuseError


class QueueFullError(InfuseError):
    """Every place in a model's queue is taken; try again after `retry_after_s` seconds."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class JobCancelled(Exception):
    """Raised inside a generation's token callback when its client has gone."""


_DONE = object()


@dataclass
class Job:
    """One answer to produce: `run(on_token)` is called on the worker thread.

    Tokens arrive on `pieces` (a thread-safe queue) followed by the final result or the error,
    then `_DONE`; `cancel()` stops the job wherever it is.
    """

    run: Callable[[Callable[[str], None]], Any]
    pieces: queue.Queue = field(default_factory=queue.Queue)
    cancelled: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None
    queued_at: float = field(default_factory=time.perf_counter)
    started_at: float | None = None
    listener: Callable[[Any], None] | None = None  # called (on the worker thread) per item too
    worker: Any = None  # the GenerationWorker it was submitted to

    def emit(self, item: Any) -> None:
        self.pieces.put(item)
        if self.listener is not None:
            self.listener(item)

    def cancel(self) -> None:
        """Stop this job: a queued job leaves the queue at once (its place is free), a running
        one stops at its next token."""
        self.cancelled.set()
        if self.worker is not None:
            self.worker.withdraw(self)

    def wait(self, timeout: float | None = None) -> Any:
        """Block until done; return the result or raise the job's error."""
        self.finished.wait(timeout)
        if self.error is not None:
            raise self.error
        return self.result


class GenerationWorker:
    """A thread that runs jobs for one model, one at a time, from a bounded queue."""

    def __init__(self, name: str, queue_size: int) -> None:
        self.name = name
        self.queue_size = queue_size
        self._pending: collections.deque[Job] = collections.deque()
        self._condition = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name=f"infuse-gen-{name}", daemon=True)
        self._recent_s: list[float] = []
        self.running: Job | None = None
        self.completed = 0
        self.cancelled = 0
        self.refused = 0
        self._thread.start()

    @property
    def waiting(self) -> int:
        return len(self._pending)

    def retry_after_s(self) -> int:
        """A fair wait before retrying: the queue length times the recent mean job time."""
        mean = sum(self._recent_s) / len(self._recent_s) if self._recent_s else 2.0
        return max(1, int(round(mean * (self.waiting + 1))))

    def submit(self, job: Job) -> Job:
        """Queue `job`; QueueFullError when all places are taken."""
        with self._condition:
            if self._closed:
                raise QueueFullError(f"Model {self.name!r} is shutting down.", 5)
            if len(self._pending) >= self.queue_size:
                self.refused += 1
                raise QueueFullError(
                    f"Model {self.name!r} is busy: {self.queue_size} requests are already waiting.",
                    self.retry_after_s(),
                )
            job.worker = self
            self._pending.append(job)
            self._condition.notify()
        return job

    def withdraw(self, job: Job) -> None:
        """Take a cancelled job out of the queue (no-op when it already started)."""
        with self._condition:
            try:
                self._pending.remove(job)
            except ValueError:
                return
            self.cancelled += 1
        self._finish(job, error=JobCancelled("client went away while queued"))

    def close(self) -> None:
        """Stop after the running job; queued jobs are cancelled."""
        with self._condition:
            self._closed = True
            pending, self._pending = list(self._pending), collections.deque()
            self._condition.notify_all()
        for job in pending:
            job.cancelled.set()
            self._finish(job, error=JobCancelled("server shutting down"))
        if self.running is not None:
            self.running.cancel()

    def _finish(self, job: Job, *, result: Any = None, error: BaseException | None = None) -> None:
        job.result, job.error = result, error
        job.finished.set()
        job.emit(_DONE)

    def _next(self) -> Job | None:
        with self._condition:
            while not self._pending and not self._closed:
                self._condition.wait()
            if self._closed:
                return None
            job = self._pending.popleft()
            self.running = job
            return job

    def _loop(self) -> None:
        while (job := self._next()) is not None:
            job.started_at = time.perf_counter()

            def on_token(piece: str, job: Job = job) -> None:
                if job.cancelled.is_set():
                    raise JobCancelled("client went away")
                job.emit(piece)

            try:
                if job.cancelled.is_set():
                    raise JobCancelled("client went away while queued")
                result = job.run(on_token)
            except JobCancelled as error:
                self.cancelled += 1
                self._finish(job, error=error)
            except BaseException as error:  # noqa: BLE001 - handed to the waiting request
                self._finish(job, error=error)
            else:
                self.completed += 1
                self._recent_s = (self._recent_s + [time.perf_counter() - job.started_at])[-20:]
                self._finish(job, result=result)
            finally:
                self.running = None


def is_done(item: Any) -> bool:
    """True for the marker that ends a job's `pieces`."""
    return item is _DONE
